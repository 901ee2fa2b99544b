# shellcheck shell=bash disable=SC2034
# Shared settings for hack/cluster/*.sh. Sourced, not executed.
#
# Every version pinned for the local test cluster lives here; change one and
# build.sh builds the new component into a fresh cache entry on the next run.

K8S_VERSION="${K8S_VERSION:-v1.36.3}"                 # k8s.io/kubernetes
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"               # go.etcd.io/etcd/server/v3
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"                # sigs.k8s.io/kwok
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"  # sigs.k8s.io/gateway-api
GIE_VERSION="${GIE_VERSION:-v1.5.0}"                  # sigs.k8s.io/gateway-api-inference-extension

CONTROLPLANE_CACHE="${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}"
TOOLS_DIR="$CONTROLPLANE_CACHE/k8s-$K8S_VERSION"
BIN_DIR="$TOOLS_DIR/bin"
CRD_DIR="$TOOLS_DIR/crds"
STAGE_DIR="$TOOLS_DIR/kwok-stages"

# Never let the go command fetch another toolchain.
export GOTOOLCHAIN=local

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${0##*/}" "$*" >&2; exit 1; }
