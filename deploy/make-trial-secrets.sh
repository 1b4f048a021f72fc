#!/usr/bin/env bash
# Secret files for a trial with `docker compose --profile local-trial`: random passwords and a
# random API token, URLs naming the trial's own PostgreSQL ("postgres") and Redis ("redis"), empty
# WeChat keys (the WeChat channel then answers 503). An existing file is never overwritten.
# For production write the files yourself (deploy/README.md, "Secrets").
set -euo pipefail
dir="$(dirname "$0")/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
put() { [ -e "$dir/$1" ] || printf '%s' "$2" > "$dir/$1"; }

put postgres_password "$(random)"
put redis_password "$(random)"
pg=$(cat "$dir/postgres_password")
redis=$(cat "$dir/redis_password")
put kepu_api_token "$(random)"
put tracker_url "postgresql://kepu:$pg@postgres:5432/kepu"
put kepu_db_url "postgresql://kepu:$pg@postgres:5432/kepu"
put wechat_redis_url "redis://:$redis@redis:6379/0"
put kepu_admin_password "$(random)"
for name in wechat_token wechat_app_id wechat_app_secret wechat_aes_key; do put "$name" ""; done
echo "secret files in $dir (REDIS_HOST=redis in deploy/.env for the trial)"
