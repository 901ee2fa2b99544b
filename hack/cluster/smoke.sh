#!/usr/bin/env bash
# Smoke test of the local cluster started by cluster.sh up: GPU scheduling on the
# fake nodes (including an Unschedulable pod), pod readiness, and the
# crashloop/imagepull fault stages. Creates one namespace and deletes it again.
#
# Environment: SMOKE_KUBECONFIG (default: the path from `cluster.sh kubeconfig`;
# an inherited KUBECONFIG is ignored so a real cluster is never touched),
# SMOKE_TIMEOUT seconds per wait (default 60).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

KUBECONFIG="${SMOKE_KUBECONFIG:-$("$HERE/cluster.sh" kubeconfig)}"
export KUBECONFIG
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-60}"
KUBECTL="$BIN_DIR/kubectl"
[[ -x "$KUBECTL" ]] || KUBECTL="$(command -v kubectl)" || die "kubectl not found (run hack/cluster/build.sh)"
NS="smoke-$(date +%s)-$$"
PASSED=0
FAILED=0

k() { "$KUBECTL" --request-timeout=20s "$@"; }

pass() { PASSED=$((PASSED + 1)); printf 'PASS  %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$*"; }

cleanup() {
	local rc=$?
	if k get namespace "$NS" >/dev/null 2>&1; then
		k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
	fi
	exit "$rc"
}
trap cleanup EXIT

# poll SECONDS COMMAND...: retry COMMAND every 0.5 s until it succeeds.
poll() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

# jp SELECTOR JSONPATH: one pod's field, for the pod matching label SELECTOR.
jp() { k -n "$NS" get pods -l "$1" -o "jsonpath={.items[0]$2}" 2>/dev/null; }
jp_is() { [[ "$(jp "$1" "$2")" == "$3" ]]; }
jp_has() { [[ "$(jp "$1" "$2")" == *"$3"* ]]; }
restarted() { local n; n="$(jp "$1" '.status.containerStatuses[0].restartCount')"; [[ -n "$n" && "$n" -gt 0 ]]; }

# deployment NAME GPUS [NODE] [FAULT]
deployment() {
	local name="$1" gpus="$2" node="${3:-}" fault="${4:-}"
	cat <<-YAML
		apiVersion: apps/v1
		kind: Deployment
		metadata:
		  name: $name
		spec:
		  replicas: 1
		  selector:
		    matchLabels: {app: $name}
		  template:
		    metadata:
		      labels:
		        app: $name
		$([[ -n "$fault" ]] && printf '        sim.controlplane.dev/fault: %s' "$fault")
		    spec:
		$([[ -n "$node" ]] && printf '      nodeSelector: {kubernetes.io/hostname: %s}' "$node")
		      containers:
		      - name: server
		        image: registry.invalid/sim/vllm:v0
		        resources:
		$(if [[ "$gpus" -gt 0 ]]; then printf '          limits: {nvidia.com/gpu: "%s"}' "$gpus"; else printf '          requests: {cpu: 100m}'; fi)
		---
	YAML
}

log "namespace $NS (kubeconfig $KUBECONFIG)"
k get --raw /readyz >/dev/null || die "API server not ready: run hack/cluster/cluster.sh up"

k create namespace "$NS" >/dev/null
# A new namespace rejects pods until the controller-manager made its default ServiceAccount.
if poll "$SMOKE_TIMEOUT" k -n "$NS" get serviceaccount default; then
	pass "default ServiceAccount created in $NS"
else
	fail "no default ServiceAccount in $NS after ${SMOKE_TIMEOUT}s"
fi

# gpu-a and gpu-b take 4 GPUs on each GPU node, so no node has the 8 that gpu-big needs.
{
	deployment gpu-a 4 gpu-node-0
	deployment gpu-b 4 gpu-node-1
	deployment gpu-big 8
	deployment crashloop 0 "" crashloop
	deployment imagepull 0 "" imagepull
} | k -n "$NS" apply -f - >/dev/null
T0=$SECONDS

if poll 15 jp_is app=crashloop '.status.containerStatuses[0].state.waiting.reason' CrashLoopBackOff; then
	# Time from pod creation to the crashloop transition, from the pod's own timestamps.
	T=$(($(date -d "$(jp app=crashloop '.status.conditions[?(@.type=="Ready")].lastTransitionTime')" +%s) - $(date -d "$(jp app=crashloop .metadata.creationTimestamp)" +%s)))
	if jp_is app=crashloop '.status.conditions[?(@.type=="Ready")].status' False && restarted app=crashloop &&
		jp_is app=crashloop '.status.phase' Running && ((T <= 12)); then
		pass "crashloop pod in CrashLoopBackOff after ${T}s (Ready=False, restartCount=$(jp app=crashloop '.status.containerStatuses[0].restartCount'))"
	else
		fail "crashloop pod in CrashLoopBackOff after ${T}s (want <= 12s) but Ready/restartCount/phase: $(jp app=crashloop '.status.conditions[?(@.type=="Ready")].status')/$(jp app=crashloop '.status.containerStatuses[0].restartCount')/$(jp app=crashloop .status.phase)"
	fi
else
	fail "crashloop pod not in CrashLoopBackOff within 15s"
	k -n "$NS" get pod -l app=crashloop -o yaml | sed -n '/^  status:/,$p' || true
fi

if poll 15 jp_has app=imagepull '.status.containerStatuses[0].state.waiting.reason' ImagePull &&
	jp_is app=imagepull '.status.phase' Pending &&
	jp_is app=imagepull '.status.conditions[?(@.type=="Ready")].status' False &&
	[[ -n "$(jp app=imagepull .spec.nodeName)" ]]; then
	pass "imagepull pod Pending on $(jp app=imagepull .spec.nodeName) with $(jp app=imagepull '.status.containerStatuses[0].state.waiting.reason'), Ready=False"
else
	fail "imagepull pod not Pending-with-node in ImagePullBackOff"
	k -n "$NS" get pod -l app=imagepull -o yaml | sed -n '/^  status:/,$p' || true
fi

if k -n "$NS" wait --for=condition=Available deployment/gpu-a deployment/gpu-b --timeout="${SMOKE_TIMEOUT}s" >/dev/null &&
	jp_is app=gpu-a '.status.conditions[?(@.type=="Ready")].status' True &&
	jp_is app=gpu-b '.status.conditions[?(@.type=="Ready")].status' True; then
	pass "gpu-a and gpu-b (4 GPUs each) Ready on $(jp app=gpu-a .spec.nodeName) and $(jp app=gpu-b .spec.nodeName) after $((SECONDS - T0))s"
else
	fail "gpu-a/gpu-b did not become Ready"
	k -n "$NS" get pods -o wide || true
fi

if poll "$SMOKE_TIMEOUT" jp_has app=gpu-big '.status.conditions[?(@.type=="PodScheduled")].message' 'Insufficient nvidia.com/gpu' &&
	jp_is app=gpu-big '.status.phase' Pending &&
	jp_is app=gpu-big '.status.conditions[?(@.type=="PodScheduled")].reason' Unschedulable; then
	pass "gpu-big (8 GPUs) Pending/Unschedulable: $(jp app=gpu-big '.status.conditions[?(@.type=="PodScheduled")].message')"
else
	fail "gpu-big is not Unschedulable with 'Insufficient nvidia.com/gpu'"
	k -n "$NS" get pod -l app=gpu-big -o yaml | sed -n '/^  status:/,$p' || true
fi

# The normal pod-ready stage must never fire for fault-labelled pods.
sleep 3
if ! jp_is app=crashloop '.status.conditions[?(@.type=="Ready")].status' True &&
	! jp_is app=imagepull '.status.conditions[?(@.type=="Ready")].status' True &&
	jp_is app=imagepull '.status.phase' Pending; then
	pass "fault pods stay not Ready"
else
	fail "a fault pod became Ready"
fi
k -n "$NS" get pods -o wide >&2 || true

T0=$SECONDS
k delete namespace "$NS" --wait=false >/dev/null
ns_gone() { ! k get namespace "$NS"; }
if poll "$SMOKE_TIMEOUT" ns_gone; then
	pass "namespace $NS deleted in $((SECONDS - T0))s"
else
	fail "namespace $NS still present after ${SMOKE_TIMEOUT}s"
fi

echo "smoke: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
