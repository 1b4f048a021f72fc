#!/usr/bin/env bash
# Debian packages the tests need: Chromium (never a downloaded browser), the CJK font
# its screenshots need, faketime (a server clock for the time-zone test), and
# redis-server (the WeChat nonce-store tests start their own on a free port).
# Each missing package is installed on its own: one that is present (chromium) never
# keeps another (fonts-noto-cjk) from being installed, and one that fails does not
# stop the next; the exit status is 1 when any failed.
set -uo pipefail
PACKAGES=(chromium fonts-noto-cjk faketime redis-server)

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq || echo "apt-get update failed; trying the installed package lists" >&2
failed=()
for package in "${missing[@]}"; do
  echo "installing Debian $package for the tests ..."
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null; then
    failed+=("$package")
  fi
done
if [ "${#failed[@]}" -ne 0 ]; then
  echo "could not install: ${failed[*]}" >&2
  exit 1
fi
