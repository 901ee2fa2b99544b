#!/usr/bin/env bash
# Makes sure a Prometheus server binary is on the machine for the metrics tests and the
# demo: Debian's `prometheus` package when none is installed. Idempotent: a warm run only
# checks. The package's own service is not started (the tests start their own server on a
# free loopback port); set CONTROLPLANE_PROMETHEUS_BIN to use another binary instead.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

have_prometheus() {
  if [ -n "${CONTROLPLANE_PROMETHEUS_BIN:-}" ]; then
    [ -x "$CONTROLPLANE_PROMETHEUS_BIN" ]
  else
    [ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null 2>&1
  fi
}

if have_prometheus; then
  exit 0
fi
if [ -n "${CONTROLPLANE_PROMETHEUS_BIN:-}" ]; then
  echo "CONTROLPLANE_PROMETHEUS_BIN=$CONTROLPLANE_PROMETHEUS_BIN is not an executable" >&2
  exit 1
fi

log "installing Prometheus from Debian's packages"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# policy-rc.d 101: the package must not start its own system service during installation
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ -n "$CREATED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
have_prometheus || { echo "Prometheus installation failed" >&2; exit 1; }
log "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -1)"
