#!/usr/bin/env bash
# Quick start: serve the API on a fresh SQLite file, register a model and two versions with
# the CLI, list them, show the errors a user meets (duplicate, missing token, weak role).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WORK=$(mktemp -d)
PORT=${PORT:-8765}
export CONTROLPLANE_ADMIN_TOKEN="quickstart-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export CONTROLPLANE_DATABASE_URL="sqlite:///$WORK/controlplane.db"
export CONTROLPLANE_URL="http://127.0.0.1:$PORT"
export CONTROLPLANE_TOKEN="$CONTROLPLANE_ADMIN_TOKEN"

$BIN/controlplane serve --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fs "$CONTROLPLANE_URL/readyz" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done

step() { printf '\n$ %s\n' "$*"; "$@"; }
step $BIN/controlplane models create chat --namespace llm --image vllm/vllm-openai:v0.11.0 \
  --gpus 1 --replicas 2 --gpu-budget 4
step $BIN/controlplane versions register chat v1 --artifact-uri s3://models/chat/v1 \
  --metadata '{"eval": {"mmlu": 0.61}, "dataset_sha256": "9f2c0e"}' --label team=nlp
step $BIN/controlplane versions register chat v2 --kind lora_adapter \
  --artifact-uri s3://models/chat/adapters/v2 --base-model meta-llama/Llama-3.1-8B-Instruct \
  --metadata '{"eval": {"mmlu": 0.63}, "training_run": "run-118"}'
step $BIN/controlplane versions list chat
printf '\n# a duplicate is refused:\n'
step $BIN/controlplane versions register chat v1 --artifact-uri s3://models/chat/v1 || true
printf '\n# a viewer token can read but not write:\n'
VIEWER=$($BIN/controlplane tokens create quickstart-viewer --role viewer -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '\n$ CONTROLPLANE_TOKEN=<viewer token> controlplane versions register chat v3 --artifact-uri s3://x/y\n'
CONTROLPLANE_TOKEN="$VIEWER" $BIN/controlplane versions register chat v3 --artifact-uri s3://x/y || true
step $BIN/controlplane audit list
