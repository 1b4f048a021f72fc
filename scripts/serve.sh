#!/usr/bin/env bash
# Start or stop the action server and the Rasa server in the background.
#   scripts/serve.sh start   -> waits until GET /status answers 200
#   scripts/serve.sh stop
# Logs and pids go to build/run/. RASA_PORT / ACTIONS_PORT override the ports; RASA_INTERFACE the
# address Rasa listens on (default: every interface; scripts/cluster.sh puts replicas on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
RASA_PORT="${RASA_PORT:-5005}"
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
# One run folder per port, so several instances (tests, replicas) can coexist.
run=build/run
[ "$RASA_PORT" = 5005 ] || run="build/run-$RASA_PORT"
mkdir -p "$run"

token() {
  if [ -n "${RASA_API_TOKEN:-}" ]; then echo "$RASA_API_TOKEN"; return; fi
  if [ ! -s build/api_token ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' > build/api_token)
  fi
  cat build/api_token
}

stop() {
  for name in rasa actions; do
    if [ -f "$run/$name.pid" ]; then
      pid=$(cat "$run/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$run/$name.pid"
    fi
  done
}

start() {
  stop
  model="${RASA_MODEL:-$(cat build/current_model)}"
  endpoints="${RASA_ENDPOINTS:-endpoints.yml}"
  if [ "$ACTIONS_PORT" != 5055 ]; then
    sed "s#127.0.0.1:5055#127.0.0.1:$ACTIONS_PORT#" "$endpoints" > "$run/endpoints.yml"
    endpoints="$run/endpoints.yml"
  fi
  # The action server takes any tracker it is sent and has no token: loopback only (rasa_sdk reads
  # SANIC_HOST; ACTIONS_HOST=0.0.0.0 for an action server on another machine, behind a firewall).
  SANIC_HOST="${ACTIONS_HOST:-127.0.0.1}" \
  .venv/bin/python -m rasa_sdk --actions actions --port "$ACTIONS_PORT" > "$run/actions.log" 2>&1 &
  echo $! > "$run/actions.pid"
  # The API token goes in through the environment (bot.server reads KEPU_API_TOKEN), never on the
  # command line, where every user of the machine could read it with ps.
  KEPU_API_TOKEN="$(token)" ACTION_ENDPOINT_URL="http://127.0.0.1:$ACTIONS_PORT/webhook" \
  .venv/bin/python -m bot.server run --model "$model" --port "$RASA_PORT" \
    ${RASA_INTERFACE:+--interface "$RASA_INTERFACE"} \
    --enable-api --cors "*" \
    --credentials credentials.yml --endpoints "$endpoints" > "$run/rasa.log" 2>&1 &
  echo $! > "$run/rasa.pid"
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$RASA_PORT/status" >/dev/null 2>&1 \
       && curl -sf "http://127.0.0.1:$ACTIONS_PORT/health" >/dev/null 2>&1; then
      echo "ready: http://localhost:$RASA_PORT"
      return 0
    fi
    if ! kill -0 "$(cat "$run/rasa.pid")" 2>/dev/null; then
      echo "Rasa server exited; last log lines:" >&2; tail -20 "$run/rasa.log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "servers did not become ready in 120s; see $run/*.log" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
