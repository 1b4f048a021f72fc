#!/usr/bin/env bash
# Debian packages the tests need: Chromium (never a downloaded browser), the CJK font
# its screenshots need, faketime (a server clock for the time-zone test), and
# redis-server (the WeChat nonce-store tests start their own on a free port), nginx (the deploy
# tests run deploy/nginx.conf in front of stand-in replicas), postgresql (the fault tests run a
# PostgreSQL cluster of their own with initdb and pg_ctl, and restart it), then the Compose schema
# (scripts/fetch-schemas.sh; KEPU_FETCH_SCHEMAS names another command, `true` in the tests of this script).
# Each missing package is installed on its own: one that is present (chromium) never
# keeps another (fonts-noto-cjk) from being installed, and one that fails does not
# stop the next; the exit status is 1 when any failed.
set -uo pipefail
PACKAGES=(chromium fonts-noto-cjk faketime redis-server nginx postgresql)

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_missing() {
  local missing=() failed=() package SUDO=
  for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq || echo "apt-get update failed; trying the installed package lists" >&2
  for package in "${missing[@]}"; do
    echo "installing Debian $package for the tests ..."
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null; then
      failed+=("$package")
    fi
  done
  if [ "${#failed[@]}" -ne 0 ]; then
    echo "could not install: ${failed[*]}" >&2
    return 1
  fi
}

status=0
install_missing || status=1
${KEPU_FETCH_SCHEMAS:-"$(dirname "$0")/fetch-schemas.sh"} || status=1
exit "$status"
