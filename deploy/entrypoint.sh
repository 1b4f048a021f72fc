#!/usr/bin/env bash
# Entry point of the 科普日 assistant image (deploy/Dockerfile). One command per role:
#   prepare       refresh knowledge/ from the image (the staff file faq.yml is never overwritten),
#                 seed models/ and build/current_model with the image's model after an upgrade,
#                 wait for the database and build the knowledge base into KEPU_DB_URL
#   rasa          the Rasa server (bot.server) on port 5005 with endpoints.replicas.yml
#   actions       the action server on ACTIONS_PORT (default 5055), bound to ACTIONS_HOST
#                 (default 127.0.0.1: the Kubernetes sidecar; compose sets its private network)
#   follow-model  keep this pod's Rasa server on build/current_model (Kubernetes, bot/staff/follow.py)
#   bot ARGS...   a staff command (bot faq list, bot retrain, bot report unanswered, ...)
# Secrets: every variable of SECRET_VARS may instead be given as NAME_FILE, the path of a file
# holding the value (docker compose secrets, mounted files); the file wins and NAME_FILE is unset.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."  # /app in the image

SECRET_VARS=(KEPU_API_TOKEN RASA_API_TOKEN TRACKER_URL KEPU_DB_URL REDIS_PASSWORD WECHAT_REDIS_URL
             WECHAT_TOKEN WECHAT_APP_ID WECHAT_APP_SECRET WECHAT_AES_KEY KEPU_ADMIN_PASSWORD)
IMAGE="$PWD/.image"  # the image's own knowledge files and model (deploy/Dockerfile)

log() { echo "entrypoint: $*" >&2; }

load_secret_files() {
  local name file_var
  for name in "${SECRET_VARS[@]}"; do
    file_var="${name}_FILE"
    if [ -n "${!file_var:-}" ]; then
      [ -r "${!file_var}" ] || { log "$file_var=${!file_var} is not a readable file"; exit 1; }
      export "$name=$(cat "${!file_var}")"
      unset "$file_var"
    fi
  done
  # The staff tools and the retraining gate (scripts/serve.sh) read RASA_API_TOKEN; bot.server
  # takes KEPU_API_TOKEN. One secret feeds both.
  if [ -n "${KEPU_API_TOKEN:-}" ] && [ -z "${RASA_API_TOKEN:-}" ]; then export RASA_API_TOKEN="$KEPU_API_TOKEN"; fi
}

require() {
  local name missing=()
  for name in "$@"; do [ -n "${!name:-}" ] || missing+=("$name"); done
  if [ "${#missing[@]}" -ne 0 ]; then
    log "missing setting(s): ${missing[*]} (see deploy/env.example and deploy/README.md)"
    exit 1
  fi
}

# knowledge/ is a volume: the image's files replace the code-owned ones, files the image no longer
# has are removed, and faq.yml (written by staff through `bot faq` and /admin) is only seeded.
sync_knowledge() {
  local file name
  mkdir -p knowledge
  for file in knowledge/*.yml; do
    name=$(basename "$file")
    [ -e "$file" ] && [ "$name" != faq.yml ] && [ ! -e "$IMAGE/knowledge/$name" ] && rm -f "$file"
  done
  for file in "$IMAGE"/knowledge/*; do
    name=$(basename "$file")
    [ "$name" = faq.yml ] && continue
    cp -p "$file" "knowledge/$name"
  done
  [ -e knowledge/faq.yml ] || cp -p "$IMAGE/knowledge/faq.yml" knowledge/faq.yml
}

# models/ and build/ are shared volumes. After an upgrade (the image's model is not the one seeded
# last) the image's model becomes current; otherwise a model staff retrained stays current.
seed_model() {
  local image_model
  image_model=$(basename "$(ls "$IMAGE"/models/*.tar.gz | head -1)")
  mkdir -p models build
  [ -e "models/$image_model" ] || cp -p "$IMAGE/models/$image_model" "models/$image_model"
  if [ "$(cat build/image_model 2>/dev/null)" != "$image_model" ] || [ ! -s build/current_model ] \
     || [ ! -e "$(cat build/current_model)" ]; then
    echo "models/$image_model" > build/current_model
    echo "$image_model" > build/image_model
    log "current model: models/$image_model (from the image)"
  fi
}

wait_for_database() {
  local i
  for i in $(seq 1 60); do
    if python -c 'from bot.knowledge.store import make_engine; make_engine().connect().close()' 2>/dev/null; then
      return 0
    fi
    log "waiting for the knowledge database ($i/60) ..."
    sleep 2
  done
  log "the knowledge database (KEPU_DB_URL) cannot be reached"
  exit 1
}

prepare() {
  require KEPU_DB_URL
  mkdir -p build
  (
    flock 9  # several replicas may start at once on the same volumes
    sync_knowledge
    seed_model
  ) 9> build/.prepare.lock
  wait_for_database
  python -m bot.knowledge.build
}

run_rasa() {
  require KEPU_API_TOKEN TRACKER_URL KEPU_DB_URL REDIS_HOST
  export REDIS_PORT="${REDIS_PORT:-6379}" REDIS_PASSWORD="${REDIS_PASSWORD:-}"
  export ACTION_ENDPOINT_URL="${ACTION_ENDPOINT_URL:-http://127.0.0.1:5055/webhook}"
  local model
  model=$(cat build/current_model)
  exec python -m bot.server run --model "$model" --port 5005 --enable-api --cors "${KEPU_CORS_ORIGINS:-*}" \
    --credentials credentials.yml --endpoints endpoints.replicas.yml
}

run_actions() {
  require KEPU_DB_URL
  SANIC_HOST="${ACTIONS_HOST:-127.0.0.1}" exec python -m rasa_sdk --actions actions --port "${ACTIONS_PORT:-5055}"
}

main() {
  local role="${1:-rasa}"
  [ "$#" -gt 0 ] && shift
  load_secret_files
  case "$role" in
    prepare) prepare ;;
    rasa) run_rasa ;;
    actions) run_actions ;;
    follow-model) exec python -m bot.staff.follow --url http://127.0.0.1:5005 ;;
    bot) exec python -m bot.cli "$@" ;;
    *) log "unknown role '$role' (prepare, rasa, actions, follow-model, bot ...)"; exit 2 ;;
  esac
}

main "$@"
