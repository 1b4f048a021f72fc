#!/usr/bin/env bash
# The Compose file schema the deploy tests validate deploy/docker-compose.yml against
# (tests/unit/test_deploy_manifests.py), fetched here, at install time, so the tests need no
# network: compose/config/compose_spec.json of the docker-compose 1.29.2 wheel from PyPI (only
# downloaded, never installed: its own pins clash with Rasa's). Both the wheel and the schema are
# checked against the sha256 below. The Kubernetes schemas come with kubernetes-validate
# (requirements.lock). KEPU_SCHEMA_DIR overrides the folder (default build/schemas).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${KEPU_SCHEMA_DIR:-build/schemas}"
WHEEL=docker_compose-1.29.2-py2.py3-none-any.whl
WHEEL_SHA256=8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809
SCHEMA=compose_spec.json
SCHEMA_SHA256=0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

[ "$(sha "$DIR/$SCHEMA")" = "$SCHEMA_SHA256" ] && exit 0
mkdir -p "$DIR"
if [ "$(sha "$DIR/$WHEEL")" != "$WHEEL_SHA256" ]; then
  rm -f "$DIR/$WHEEL"
  echo "fetching the Compose schema (docker-compose 1.29.2 wheel) ..."
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r <(echo "docker-compose==1.29.2 --hash=sha256:$WHEEL_SHA256") -d "$DIR"
fi
[ "$(sha "$DIR/$WHEEL")" = "$WHEEL_SHA256" ] || { echo "$DIR/$WHEEL: wrong sha256" >&2; exit 1; }
"$PY" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))' \
  "$DIR/$WHEEL" > "$DIR/$SCHEMA.tmp"
[ "$(sha "$DIR/$SCHEMA.tmp")" = "$SCHEMA_SHA256" ] || { rm -f "$DIR/$SCHEMA.tmp"; echo "$SCHEMA: wrong sha256" >&2; exit 1; }
mv "$DIR/$SCHEMA.tmp" "$DIR/$SCHEMA"
echo "Compose schema in $DIR/$SCHEMA"
