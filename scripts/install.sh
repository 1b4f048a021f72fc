#!/usr/bin/env bash
# Create .venv with Python 3.10 and install the pinned dependencies.
# Re-running is cheap: it reinstalls only when requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in "${PYTHON310:-}" python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

# The staff command: .venv/bin/bot runs `python -m bot.cli` from this checkout
# (rewritten only when its content changes, so re-running stays idempotent).
install_bot_command() {
  local target=.venv/bin/bot tmp
  tmp=$(mktemp)
  cat > "$tmp" <<WRAPPER
#!/usr/bin/env bash
# Staff command of the 科普日 assistant (written by scripts/install.sh).
export PYTHONPATH="$PWD\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$PWD/.venv/bin/python" -m bot.cli "\$@"
WRAPPER
  if ! cmp -s "$tmp" "$target"; then mv "$tmp" "$target"; chmod 755 "$target"; else rm -f "$tmp"; fi
}

stamp=".venv/.installed-$(sha256sum requirements.lock | cut -c1-16)"
if [ -f "$stamp" ]; then install_bot_command; exit 0; fi

if [ ! -x .venv/bin/python ]; then
  if ! py=$(find_python); then
    echo "错误：需要 Python 3.10（Rasa 3.6 不支持 3.11+）。请安装 python3.10，或用 PYTHON310=/path/to/python3.10 指定。" >&2
    echo "error: Python 3.10 not found (Rasa 3.6 needs Python < 3.11). Install it or set PYTHON310." >&2
    exit 1
  fi
  echo "creating .venv with $py"
  "$py" -m venv .venv
fi
# pip's notes about unused local index folders are noise here; real errors still show.
pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
pip_install --upgrade pip==24.0
echo "installing pinned dependencies (requirements.lock) ..."
pip_install -r requirements.lock
rm -f .venv/.installed-*
touch "$stamp"
echo "dependencies installed"
install_bot_command
