#!/usr/bin/env bash
# Build the Kubernetes components for the local test cluster from the Go module
# proxy (no Docker, no release downloads) and cache them by version:
#
#   ${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}/k8s-<version>/
#     bin/          kube-apiserver kube-controller-manager kube-scheduler kubectl
#                   etcd kwok kwokctl
#     crds/         Gateway API (standard channel) + Inference Extension CRDs
#     kwok-stages/  kwok's default Stage documents
#     src/          wrapper modules used for the build
#
# Each binary is skipped when it already exists with a matching version stamp.
# Binaries are built into a temporary folder and renamed into place, so an
# interrupted build never leaves a half-written binary that looks finished.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 is needed to build Kubernetes $K8S_VERSION)"
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is not on PATH"

NICE=(nice -n "${BUILD_NICE:-10}")
STAGING_VERSION="v0.${K8S_VERSION#v1.}"   # v1.36.3 -> v0.36.3
START=$(date +%s)

mkdir -p "$BIN_DIR/.stamps" "$TOOLS_DIR/src" "$CRD_DIR" "$STAGE_DIR"
# Run go outside any module (the caller may sit in one).
cd "$TOOLS_DIR"

# One build at a time per cache entry (cluster.sh up calls us too).
exec 9>"$TOOLS_DIR/.build.lock"
if ! flock -n 9; then
	log "another build.sh holds $TOOLS_DIR/.build.lock; waiting for it"
	flock 9
fi

# Leftovers of a killed build (we hold the lock, so none is in use).
rm -rf "$BIN_DIR"/.tmp.*
TMP="$(mktemp -d "$BIN_DIR/.tmp.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

# is_built NAME VERSION: the binary exists, is executable and was built for VERSION.
is_built() {
	[[ -x "$BIN_DIR/$1" && -f "$BIN_DIR/.stamps/$1" && "$(cat "$BIN_DIR/.stamps/$1")" == "$2" ]]
}

# install_bin NAME VERSION: move $TMP/NAME into bin/ atomically, then stamp it.
install_bin() {
	[[ -x "$TMP/$1" ]] || die "build did not produce $1"
	mv -f "$TMP/$1" "$BIN_DIR/$1"
	printf '%s\n' "$2" >"$BIN_DIR/.stamps/$1.tmp"
	mv -f "$BIN_DIR/.stamps/$1.tmp" "$BIN_DIR/.stamps/$1"
	log "installed $BIN_DIR/$1 ($2)"
}

# mod_dir MODULE@VERSION: download a module and print its folder in the module cache.
mod_dir() {
	local json dir
	json="$(go mod download -json "$1")" || die "go mod download $1 failed: $json"
	dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -n "$dir" && -d "$dir" ]] || die "go mod download $1 gave no Dir: $json"
	printf '%s\n' "$dir"
}

# mod_file MODULE@VERSION: print the path of the module's downloaded go.mod.
mod_file() {
	local json f
	json="$(go mod download -json "$1")" || die "go mod download $1 failed: $json"
	f="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	[[ -n "$f" && -f "$f" ]] || die "go mod download $1 gave no GoMod: $json"
	printf '%s\n' "$f"
}

# new_wrapper DIR NAME: a fresh, empty wrapper module in DIR.
new_wrapper() {
	rm -rf "$1"
	mkdir -p "$1"
	(cd "$1" && go mod init "$2" >/dev/null 2>&1) || die "go mod init in $1 failed"
}

build_kubernetes() {
	local missing=() b
	for b in "${K8S_BINARIES[@]}"; do
		is_built "$b" "$K8S_VERSION" || missing+=("$b")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "kubernetes $K8S_VERSION: cached"
		return
	fi
	log "kubernetes $K8S_VERSION: building ${missing[*]} (cold: 25-45 min on 2 cores)"

	local w="$TOOLS_DIR/src/kubernetes" gomod replaces=() m pkgs=()
	new_wrapper "$w" controlplane.local/k8s-build
	gomod="$(mod_file "k8s.io/kubernetes@$K8S_VERSION")"
	# k8s.io/kubernetes requires its staging modules at v0.0.0 (replaced by
	# ./staging/... in its own repo); pin each to the matching published tag.
	while read -r m; do
		replaces+=("-replace=$m=$m@$STAGING_VERSION")
	done < <(awk '
		$1 == "require" && $3 == "v0.0.0" && $2 ~ /^k8s\.io\// { print $2; next }
		$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
	[[ ${#replaces[@]} -gt 0 ]] || die "found no k8s.io/* v0.0.0 requirements in $gomod"
	log "pinning ${#replaces[@]} staging modules to $STAGING_VERSION"
	(cd "$w" && go mod edit "${replaces[@]}") || die "go mod edit failed in $w"

	for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	(cd "$w" && "${NICE[@]}" go get -tool "${pkgs[@]/%/@$K8S_VERSION}") ||
		die "go get -tool ${pkgs[*]}@$K8S_VERSION failed in $w"

	local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
	local ld=(-s -w) p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=(-X "$p.gitVersion=$K8S_VERSION" -X "$p.gitMajor=1" -X "$p.gitMinor=$minor"
			-X "$p.gitTreeState=clean" -X "$p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
	done
	# One go build for all of them: the shared packages compile once.
	(cd "$w" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags "${ld[*]}" -o "$TMP/" "${pkgs[@]}") ||
		die "go build of ${pkgs[*]} failed"
	local version_cmd
	for b in "${missing[@]}"; do
		version_cmd=("$TMP/$b" --version)
		[[ "$b" == kubectl ]] && version_cmd=("$TMP/$b" version --client)
		"${version_cmd[@]}" 2>/dev/null | grep -q "$K8S_VERSION" ||
			die "$b does not report $K8S_VERSION: $("${version_cmd[@]}" 2>&1 | head -1)"
		install_bin "$b" "$K8S_VERSION"
	done
}

build_etcd() {
	if is_built etcd "$ETCD_VERSION"; then
		log "etcd $ETCD_VERSION: cached"
		return
	fi
	log "etcd $ETCD_VERSION: building"
	local w="$TOOLS_DIR/src/etcd"
	new_wrapper "$w" controlplane.local/etcd-build
	# etcd's own go.mod uses replace directives, which a dependency's build
	# ignores; its published sibling modules at the same tag are used instead.
	(cd "$w" && "${NICE[@]}" go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION") ||
		die "go get -tool go.etcd.io/etcd/server/v3@$ETCD_VERSION failed"
	(cd "$w" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3) ||
		die "go build of etcd failed"
	"$TMP/etcd" --version 2>/dev/null | grep -q "${ETCD_VERSION#v}" ||
		die "etcd does not report $ETCD_VERSION: $("$TMP/etcd" --version 2>&1 | head -1)"
	install_bin etcd "$ETCD_VERSION"
}

build_kwok() {
	local missing=() b pkgs=()
	for b in kwok kwokctl; do
		is_built "$b" "$KWOK_VERSION" || missing+=("$b")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "kwok $KWOK_VERSION: cached"
		return
	fi
	log "kwok $KWOK_VERSION: building ${missing[*]}"
	for b in "${missing[@]}"; do pkgs+=("sigs.k8s.io/kwok/cmd/$b@$KWOK_VERSION"); done
	# kwok has no replace directives, so go install works directly.
	GOBIN="$TMP" CGO_ENABLED=0 "${NICE[@]}" go install -trimpath \
		-ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}" \
		"${pkgs[@]}" || die "go install ${pkgs[*]} failed"
	for b in "${missing[@]}"; do install_bin "$b" "$KWOK_VERSION"; done
}

# copy_yamls SRC_DIR DEST_DIR VERSION FILE...: copy manifests (stamped by version;
# copied again when one of FILE is missing, e.g. a file added to the list).
copy_yamls() {
	local src="$1" dest="$2" version="$3" f have=1
	shift 3
	for f in "$@"; do [[ -f "$dest/${f##*/}" ]] || have=0; done
	if [[ $have == 1 && -f "$dest/.version" && "$(cat "$dest/.version")" == "$version" ]]; then
		return 0
	fi
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp"
	for f in "$@"; do
		[[ -f "$src/$f" ]] || die "$src/$f not found"
		cp "$src/$f" "$dest.tmp/${f##*/}"
		chmod 0644 "$dest.tmp/${f##*/}"
	done
	printf '%s\n' "$version" >"$dest.tmp/.version"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	log "copied $# manifests into $dest"
}

fetch_manifests() {
	local d files=()
	if [[ ! -f "$CRD_DIR/gateway-api/.version" || "$(cat "$CRD_DIR/gateway-api/.version")" != "$GATEWAY_API_VERSION" ]]; then
		d="$(mod_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
		mapfile -t files < <(cd "$d" && ls config/crd/standard/*.yaml)
		copy_yamls "$d" "$CRD_DIR/gateway-api" "$GATEWAY_API_VERSION" "${files[@]}"
	fi
	if [[ ! -f "$CRD_DIR/inference-extension/.version" || "$(cat "$CRD_DIR/inference-extension/.version")" != "$GIE_VERSION" ||
		! -f "$CRD_DIR/inference-extension/inference.networking.x-k8s.io_inferencemodelrewrites.yaml" ]]; then
		d="$(mod_dir "sigs.k8s.io/gateway-api-inference-extension@$GIE_VERSION")"
		# InferencePool (v1) for pools; InferenceModelRewrite (v1alpha2) for weighted
		# adapter rollouts
		copy_yamls "$d" "$CRD_DIR/inference-extension" "$GIE_VERSION" \
			config/crd/bases/inference.networking.k8s.io_inferencepools.yaml \
			config/crd/bases/inference.networking.x-k8s.io_inferencemodelrewrites.yaml
	fi
	if [[ ! -f "$STAGE_DIR/.version" || "$(cat "$STAGE_DIR/.version")" != "$KWOK_VERSION" ]]; then
		d="$(mod_dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
		copy_yamls "$d" "$STAGE_DIR" "$KWOK_VERSION" \
			kustomize/stage/node/fast/node-initialize.yaml \
			kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
			kustomize/stage/pod/fast/pod-ready.yaml \
			kustomize/stage/pod/fast/pod-complete.yaml \
			kustomize/stage/pod/fast/pod-delete.yaml
	fi
}

fetch_manifests
build_kwok
build_etcd
build_kubernetes

ELAPSED=$(($(date +%s) - START))
log "done in ${ELAPSED}s ($((ELAPSED / 60))m$((ELAPSED % 60))s); binaries in $BIN_DIR"
