#!/usr/bin/env bash
# Makes sure a headless browser is on the machine for the web page's browser tests (marker
# `browser`): Debian's `chromium` package when /usr/bin/chromium is missing. Idempotent: a
# warm run only checks. Set CONTROLPLANE_CHROMIUM_BIN to use another Chromium instead.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

BIN="${CONTROLPLANE_CHROMIUM_BIN:-/usr/bin/chromium}"

if [ -x "$BIN" ]; then
  exit 0
fi
if [ -n "${CONTROLPLANE_CHROMIUM_BIN:-}" ]; then
  echo "CONTROLPLANE_CHROMIUM_BIN=$CONTROLPLANE_CHROMIUM_BIN is not an executable" >&2
  exit 1
fi

log "installing Chromium from Debian's packages"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# fonts-liberation: readable text in the screenshots the tests keep
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium fonts-liberation >/dev/null
[ -x "$BIN" ] || { echo "Chromium installation failed" >&2; exit 1; }
log "chromium: $("$BIN" --version 2>/dev/null | head -1)"
