#!/usr/bin/env bash
# Several Rasa replicas behind nginx on this machine (`make run-cluster`, `make stop-cluster`):
#   scripts/cluster.sh start        -> waits until GET /status through nginx answers 200
#   scripts/cluster.sh stop         -> stops nginx and every replica this cluster started
#   scripts/cluster.sh status       -> each part's state; exit 0 when the front answers 200
#   scripts/cluster.sh env          -> the running cluster's settings, NAME=value (KEPU_DB_URL, KEPU_LIVE_URLS, ...)
#   scripts/cluster.sh bot ARGS...  -> the staff command with those settings (bot retrain, bot rollback)
#
# Each replica is scripts/serve.sh (a Rasa server and its action server) with endpoints.replicas.yml
# (the lock store's Redis db and key prefix filled in: <cluster folder>/endpoints.yml):
# conversations in PostgreSQL, the per-conversation lock in Redis; the knowledge database in
# PostgreSQL; the WeChat channel's nonces and per-user state in Redis. nginx (Debian's, run as the
# current user with its pid, logs and temp files under the cluster folder) spreads requests
# round-robin over the replicas. deploy/ is the same layout in containers.
#
# Settings (environment):
#   KEPU_CLUSTER_PORT           nginx's port                                   5005
#   KEPU_CLUSTER_HOST           the address nginx listens on                   0.0.0.0
#   KEPU_CLUSTER_REPLICA_PORTS  the replicas' Rasa ports (one per replica)     "5006 5007"
#   KEPU_CLUSTER_ACTIONS_PORTS  their action servers' ports, in the same order "5056 5057"
#   KEPU_CLUSTER_REPLICA_HOST   the address the replicas listen on             127.0.0.1
#   KEPU_CLUSTER_DB_URL         the tracker store (PostgreSQL, created if missing)
#                               postgresql://postgres@127.0.0.1:5432/kepu_cluster
#   KEPU_CLUSTER_KB_URL         the knowledge database                         KEPU_CLUSTER_DB_URL
#   KEPU_CLUSTER_REDIS_URL      locks and WeChat state                         redis://127.0.0.1:6379/2
#   KEPU_CLUSTER_PREFIX         Redis key prefix, letters and digits           kepucluster
#   WECHAT_REDIS_URL, WECHAT_STATE_PREFIX, WECHAT_REDIS_PREFIX, KEPU_TRUSTED_PROXIES,
#   KEPU_RATE_LIMIT_REDIS_URL, KEPU_RATE_LIMIT_PREFIX: as documented, defaulting to the cluster's
#   Redis, <prefix>:wechat:state: / <prefix>:wechat:nonce:, 127.0.0.1, <prefix>:ratelimit:.
# Files: build/cluster/ (build/cluster-<port>/ for another nginx port): nginx.conf, nginx.pid,
# nginx-*.log, endpoints.yml, cluster.env; each replica's logs and pids in build/run-<replica port>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1

PORT="${KEPU_CLUSTER_PORT:-5005}"
dir=build/cluster
[ "$PORT" = 5005 ] || dir="build/cluster-$PORT"
state="$dir/cluster.env"

configure() {
  HOST="${KEPU_CLUSTER_HOST:-0.0.0.0}"
  read -r -a REPLICA_PORTS <<< "${KEPU_CLUSTER_REPLICA_PORTS:-5006 5007}"
  read -r -a ACTIONS_PORTS <<< "${KEPU_CLUSTER_ACTIONS_PORTS:-5056 5057}"
  if [ "${#REPLICA_PORTS[@]}" -eq 0 ] || [ "${#REPLICA_PORTS[@]}" != "${#ACTIONS_PORTS[@]}" ]; then
    echo "KEPU_CLUSTER_REPLICA_PORTS and KEPU_CLUSTER_ACTIONS_PORTS need one port each per replica" >&2
    exit 2
  fi
  DB_URL="${KEPU_CLUSTER_DB_URL:-postgresql://postgres@127.0.0.1:5432/kepu_cluster}"
  KB_URL="${KEPU_CLUSTER_KB_URL:-$DB_URL}"
  REDIS_URL="${KEPU_CLUSTER_REDIS_URL:-redis://127.0.0.1:6379/2}"
  PREFIX="${KEPU_CLUSTER_PREFIX:-kepucluster}"
  if ! [[ "$PREFIX" =~ ^[A-Za-z0-9]+$ ]]; then
    echo "KEPU_CLUSTER_PREFIX must be letters and digits (Rasa's lock store refuses others): $PREFIX" >&2
    exit 2
  fi
  NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
}

# The replicas' environment, written to cluster.env (mode 600: the URLs may hold passwords).
write_state() {
  local urls=() port
  for port in "${REPLICA_PORTS[@]}"; do urls+=("http://127.0.0.1:$port"); done
  mkdir -p "$dir"
  (umask 077; {
    echo "# written by scripts/cluster.sh start; 'set -a; . $state; set +a' gives a shell the cluster's settings"
    printf 'KEPU_CLUSTER_PORT=%q\nKEPU_CLUSTER_REPLICA_PORTS=%q\nKEPU_CLUSTER_ACTIONS_PORTS=%q\n' \
      "$PORT" "${REPLICA_PORTS[*]}" "${ACTIONS_PORTS[*]}"
    printf 'TRACKER_URL=%q\nKEPU_DB_URL=%q\nKEPU_LIVE_URLS=%q\n' "$DB_URL" "$KB_URL" "${urls[*]}"
    printf '%s\n' "$1"  # REDIS_HOST, REDIS_PORT, REDIS_PASSWORD (scripts/cluster_stores.py)
    printf 'WECHAT_STATE=redis\nWECHAT_NONCE_STORE=redis\n'
    printf 'WECHAT_REDIS_URL=%q\n' "${WECHAT_REDIS_URL:-$REDIS_URL}"
    printf 'WECHAT_STATE_PREFIX=%q\n' "${WECHAT_STATE_PREFIX:-$PREFIX:wechat:state:}"
    printf 'WECHAT_REDIS_PREFIX=%q\n' "${WECHAT_REDIS_PREFIX:-$PREFIX:wechat:nonce:}"
    printf 'KEPU_TRUSTED_PROXIES=%q\n' "${KEPU_TRUSTED_PROXIES:-127.0.0.1}"
    # Rate limits counted in Redis, so every replica sees the same requests (bot/ratelimit.py).
    printf 'KEPU_RATE_LIMIT_STORE=redis\nKEPU_RATE_LIMIT_REDIS_URL=%q\n' "${KEPU_RATE_LIMIT_REDIS_URL:-$REDIS_URL}"
    printf 'KEPU_RATE_LIMIT_PREFIX=%q\n' "${KEPU_RATE_LIMIT_PREFIX:-$PREFIX:ratelimit:}"
  } > "$state")
}

# nginx.conf: like deploy/nginx.conf, on this machine. REST, widget, WeChat and /status go
# round-robin to any replica (conversations in PostgreSQL, locks and WeChat state in Redis); /admin
# to the first replica while it is up (a retrain's progress lives in the process running it);
# Rasa's HTTP API is not offered at the front: staff tools reach each replica (KEPU_LIVE_URLS).
write_nginx_conf() {
  local root port user_line="" first=1
  root="$(pwd)/$dir"
  mkdir -p "$root/nginx-temp"
  # Only a master running as root switches its workers to another user (nobody by default, who could
  # not write the temp folders here): keep them the current user as well.
  [ "$(id -u)" != 0 ] || user_line="user $(id -un);"
  {
    cat <<CONF
# written by scripts/cluster.sh start
$user_line
daemon on;
worker_processes 1;
pid $root/nginx.pid;
error_log $root/nginx-error.log warn;
events { worker_connections 1024; }
http {
  # No query strings: signed WeChat URLs (signature, nonce, echostr) never reach the log.
  log_format cluster '\$remote_addr [\$time_local] "\$request_method \$uri" \$status \$request_time upstream=\$upstream_addr';
  access_log $root/nginx-access.log cluster;
  client_body_temp_path $root/nginx-temp/body;
  proxy_temp_path $root/nginx-temp/proxy;
  fastcgi_temp_path $root/nginx-temp/fastcgi;
  uwsgi_temp_path $root/nginx-temp/uwsgi;
  scgi_temp_path $root/nginx-temp/scgi;
  server_tokens off;
  upstream rasa_any {
CONF
    for port in "${REPLICA_PORTS[@]}"; do
      echo "    server 127.0.0.1:$port max_fails=1 fail_timeout=10s;"
    done
    echo "  }"
    echo "  upstream rasa_admin {"
    for port in "${REPLICA_PORTS[@]}"; do
      if [ "$first" = 1 ]; then echo "    server 127.0.0.1:$port max_fails=1 fail_timeout=10s;"; first=0
      else echo "    server 127.0.0.1:$port backup;"; fi
    done
    cat <<CONF
  }
  server {
    listen $HOST:$PORT;
    client_max_body_size 1m;
    proxy_http_version 1.1;
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_connect_timeout 2s;
    proxy_read_timeout 60s;
    # A replica that refuses the connection, or answers 502/503 (still loading), is skipped for
    # 10 s; nginx never sends a POST that reached one replica to another.
    proxy_next_upstream error timeout http_502 http_503;
    location = /status { proxy_pass http://rasa_any; }
    # A REST message whose replica died before answering is run again on another one (at least
    # once: it waits there for the dead replica's lock ticket, lock_lifetime in endpoints.yml); a
    # slow answer (timeout) is not sent twice.
    location /webhooks/rest/ {
      proxy_pass http://rasa_any;
      proxy_next_upstream error http_502 http_503 non_idempotent;
    }
    location /admin { proxy_pass http://rasa_admin; }
    location ~ ^/(model|conversations|domain|version)(/|\$) { return 404; }
    location / { proxy_pass http://rasa_any; }
  }
}
CONF
  } > "$root/nginx.conf"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_nginx() {
  local pid
  alive "$dir/nginx.pid" || { rm -f "$dir/nginx.pid"; return 0; }
  pid=$(cat "$dir/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$dir/nginx.pid"
}

# Run `scripts/serve.sh $1` for every replica at once, with the cluster's environment; 1 when any failed.
each_replica() {
  local i pids=() failed=0
  for i in "${!REPLICA_PORTS[@]}"; do
    (set -a; . "$state"; set +a
     RASA_PORT="${REPLICA_PORTS[i]}" ACTIONS_PORT="${ACTIONS_PORTS[i]}" RASA_ENDPOINTS="$dir/endpoints.yml" \
     RASA_INTERFACE="${KEPU_CLUSTER_REPLICA_HOST:-127.0.0.1}" \
       scripts/serve.sh "$1" > "$dir/serve-${REPLICA_PORTS[i]}.out" 2>&1) &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[i]}"; then
      failed=1
      echo "replica on port ${REPLICA_PORTS[i]} failed to $1:" >&2
      cat "$dir/serve-${REPLICA_PORTS[i]}.out" >&2
    fi
  done
  return "$failed"
}

# Exit when a port already answers: a server this script did not start (serve.sh would take its
# answers for its own replica's).
ports_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use: stop what listens there or choose other ports (KEPU_CLUSTER_*)" >&2
      exit 1
    fi
  done
}

# Debian's nginx, installed when missing (as scripts/install-test-deps.sh does for the tests).
ensure_nginx() {
  [ -x "$NGINX" ] && return 0
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing Debian nginx ..."
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null || true
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
  [ -x "$NGINX" ] || { echo "nginx is missing and could not be installed (apt-get install nginx, or set NGINX)" >&2; exit 1; }
}

front_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/status" || true; }

start() {
  configure
  ensure_nginx
  [ -s build/current_model ] || { echo "no trained model (build/current_model): run 'make train'" >&2; exit 1; }
  [ ! -f "$state" ] || (stop)
  ports_free "$PORT" "${REPLICA_PORTS[@]}" "${ACTIONS_PORTS[@]}"
  mkdir -p "$dir"
  local t0 redis_env
  t0=$(date +%s)
  redis_env=$($PY scripts/cluster_stores.py prepare --db "$DB_URL" --db "$KB_URL" --redis "$REDIS_URL" \
    --prefix "$PREFIX" --endpoints "$dir/endpoints.yml")
  $PY -m bot.knowledge.build --db "$KB_URL" >/dev/null
  # One API token for every replica, made before they start side by side (scripts/serve.sh).
  if [ -z "${RASA_API_TOKEN:-}" ] && [ ! -s build/api_token ]; then
    (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(24))' > build/api_token)
  fi
  write_state "$redis_env"
  write_nginx_conf
  echo "starting ${#REPLICA_PORTS[@]} replicas (ports ${REPLICA_PORTS[*]}) ..."
  if ! each_replica start; then
    stop; exit 1
  fi
  local nginx_args=(-p "$(pwd)/$dir/" -c "$(pwd)/$dir/nginx.conf" -e "$(pwd)/$dir/nginx-error.log")
  if ! "$NGINX" -t -q "${nginx_args[@]}" || ! "$NGINX" "${nginx_args[@]}"; then
    echo "nginx did not start; see $dir/nginx-error.log" >&2
    stop; exit 1
  fi
  for _ in $(seq 1 50); do
    if [ "$(front_status)" = 200 ]; then
      echo "ready: http://localhost:$PORT (${#REPLICA_PORTS[@]} replicas, $(( $(date +%s) - t0 ))s)"
      return 0
    fi
    sleep 0.2
  done
  echo "nginx does not answer /status with 200 on port $PORT; see $dir/nginx-error.log" >&2
  stop; exit 1
}

stop() {
  configure
  if [ -f "$state" ]; then  # the ports this cluster was started with
    read -r -a REPLICA_PORTS <<< "$(. "$state"; echo "$KEPU_CLUSTER_REPLICA_PORTS")"
    read -r -a ACTIONS_PORTS <<< "$(. "$state"; echo "$KEPU_CLUSTER_ACTIONS_PORTS")"
  fi
  stop_nginx
  mkdir -p "$dir"; touch "$state"
  each_replica stop || true
  rm -f "$state"
}

status() {
  configure
  [ -f "$state" ] || { echo "no cluster started on port $PORT ($state is missing)"; exit 1; }
  local port code
  read -r -a REPLICA_PORTS <<< "$(. "$state"; echo "$KEPU_CLUSTER_REPLICA_PORTS")"
  if alive "$dir/nginx.pid"; then echo "nginx: running (pid $(cat "$dir/nginx.pid"))"; else echo "nginx: stopped"; fi
  for port in "${REPLICA_PORTS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/status" || true)
    echo "replica $port: GET /status -> ${code:-000}"
  done
  code=$(front_status)
  echo "front http://localhost:$PORT: GET /status -> ${code:-000}"
  [ "$code" = 200 ]
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env)
    [ -f "$state" ] || { echo "no cluster started on port $PORT" >&2; exit 1; }
    (set -a; . "$state"; set +a
     for name in $(sed -n 's/^\([A-Z_]*\)=.*/\1/p' "$state"); do
       if [ "$name" = REDIS_PASSWORD ] && [ -n "$REDIS_PASSWORD" ]; then echo "$name=***"; else echo "$name=${!name}"; fi
     done) ;;
  bot)
    [ -f "$state" ] || { echo "no cluster started on port $PORT" >&2; exit 1; }
    shift; set -a; . "$state"; set +a
    PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m bot.cli "$@" ;;
  *) echo "usage: $0 start|stop|status|env|bot ARGS..." >&2; exit 2 ;;
esac
