#!/usr/bin/env bash
# Sets up everything the tests and the demo need, on a fresh machine or a warm one:
#   - uv (into a cache folder outside the repo) and the project's virtualenv (.venv) from uv.lock
#   - PostgreSQL server binaries from Debian's packages, when none are installed
# Idempotent: a warm run takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}"
UV="${UV:-}"
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11+, never download one

log() { printf '==> %s\n' "$*" >&2; }

# --- uv ---------------------------------------------------------------------------------
if [ -z "$UV" ]; then
  if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
  else
    UV="$CACHE/uv/bin/uv"
    if [ ! -x "$UV" ]; then
      log "installing uv into $CACHE/uv"
      python3 -m venv "$CACHE/uv"
      "$CACHE/uv/bin/pip" install --quiet --disable-pip-version-check "uv>=0.5,<1"
    fi
  fi
fi

# --- Python environment -----------------------------------------------------------------
log "syncing .venv from uv.lock"
"$UV" sync --frozen --quiet

# --- PostgreSQL (for the tests; production brings its own) -----------------------------
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
if [ -z "${CONTROLPLANE_TEST_POSTGRES_URL:-}" ] && ! have_postgres; then
  log "installing PostgreSQL from Debian's packages"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  have_postgres || { echo "PostgreSQL installation failed" >&2; exit 1; }
fi
# --- Prometheus (for the metrics tests and the demo) ------------------------------------
scripts/ensure-prometheus.sh

# --- Chromium (for the web page's browser tests) ----------------------------------------
scripts/ensure-chromium.sh

log "ready"
