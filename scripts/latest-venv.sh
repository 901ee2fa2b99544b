#!/usr/bin/env bash
# A second virtualenv, .venv-latest, with the newest versions pyproject.toml allows, resolved
# afresh (uv.lock ignored): what a user gets from `pip install -e . --group dev` today.
# `make test-latest` runs the suite in it; `make test` keeps to uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null   # uv, PostgreSQL, Prometheus, Chromium
CACHE="${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}"
UV="${UV:-$(command -v uv || echo "$CACHE/uv/bin/uv")}"
export UV_PYTHON_DOWNLOADS=never
VENV=.venv-latest
[ -x "$VENV/bin/python" ] || "$UV" venv --quiet "$VENV"
# --upgrade: every dependency at the newest version its bounds allow, now
VIRTUAL_ENV="$VENV" "$UV" pip install --quiet --upgrade -e . --group dev
VIRTUAL_ENV="$VENV" "$UV" pip freeze > "$VENV/versions.txt"
echo "==> $VENV: $(grep -ciE '^(fastapi|starlette|httpx|sqlalchemy|sqlmodel|pydantic|kubernetes)=' "$VENV/versions.txt") core packages at their newest; versions in $VENV/versions.txt" >&2
