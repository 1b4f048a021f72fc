#!/usr/bin/env bash
# `make run`: start both servers, print where to chat, stop them on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo; echo "stopping ..."; scripts/serve.sh stop; exit 0' INT TERM
scripts/serve.sh start
port="${RASA_PORT:-5005}"
cat <<MSG

科普日智能助手已启动 / the assistant is running:
  门户演示页 / demo portal page:   http://localhost:$port/
  REST 接口 / REST channel:        POST http://localhost:$port/webhooks/rest/webhook
                                   {"sender": "me", "message": "截止日期是什么时候"}
  就绪检查 / readiness:            GET http://localhost:$port/status
  HTTP API 令牌 / API token:       build/api_token (or RASA_API_TOKEN)
  日志 / logs:                     build/run/*.log
按 Ctrl-C 停止 / Ctrl-C stops everything.
MSG
while kill -0 "$(cat build/run/rasa.pid)" 2>/dev/null; do sleep 1; done
echo "Rasa server stopped; see build/run/rasa.log" >&2
scripts/serve.sh stop
exit 1
