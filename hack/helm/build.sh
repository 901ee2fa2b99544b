#!/usr/bin/env bash
# Build helm from its Go module (no release download, no Docker) and cache it by version:
#
#   ${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}/helm-<version>/bin/helm
#
# A no-op when that binary exists and reports the version. The build goes into a
# temporary folder and is renamed into place, so an interrupted build never leaves a
# half-written binary that looks finished. Prints the binary's path as the last line.
#
# Environment:
#   HELM_VERSION        helm.sh/helm/v4 module version (default v4.3.1)
#   CONTROLPLANE_CACHE  binary cache (default ~/.cache/controlplane)
#   BUILD_NICE          niceness of the build (default 10)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.1}"
HELM_MODULE="helm.sh/helm/v4"
CONTROLPLANE_CACHE="${CONTROLPLANE_CACHE:-$HOME/.cache/controlplane}"
HELM_DIR="$CONTROLPLANE_CACHE/helm-$HELM_VERSION"
HELM_BIN="$HELM_DIR/bin/helm"

# Never let the go command fetch another toolchain.
export GOTOOLCHAIN=local

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# is_built: the binary exists, runs, and reports the version we want.
is_built() {
	[[ -x "$HELM_BIN" ]] &&
		[[ "$("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

if is_built; then
	printf '%s\n' "$HELM_BIN"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 is needed to build helm $HELM_VERSION)"
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is not on PATH"

mkdir -p "$HELM_DIR/bin"
# One build at a time per cache entry; whoever waited finds it built.
exec 9>"$HELM_DIR/.build.lock"
if ! flock -n 9; then
	log "another build.sh holds $HELM_DIR/.build.lock; waiting for it"
	flock 9
fi
if is_built; then
	printf '%s\n' "$HELM_BIN"
	exit 0
fi

# Leftovers of a killed build (we hold the lock, so none is in use).
rm -rf "$HELM_DIR"/bin/.tmp.*
TMP="$(mktemp -d "$HELM_DIR/bin/.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

START=$(date +%s)
log "helm $HELM_VERSION: building $HELM_MODULE/cmd/helm from the Go module proxy (cold: a few minutes on 2 cores)"
# Run go outside any module (the caller may sit in one); helm's go.mod has no replace
# directives, so `go install module@version` builds exactly what its go.sum pins.
# The -X flags are what helm's own Makefile sets for a tagged release.
ld=(-s -w
	-X "$HELM_MODULE/internal/version.version=$HELM_VERSION"
	-X "$HELM_MODULE/internal/version.metadata="
	-X "$HELM_MODULE/internal/version.gitTreeState=clean")
(cd "$TMP" && GOBIN="$TMP" CGO_ENABLED=0 nice -n "${BUILD_NICE:-10}" \
	go install -trimpath -ldflags "${ld[*]}" "$HELM_MODULE/cmd/helm@$HELM_VERSION") ||
	die "go install $HELM_MODULE/cmd/helm@$HELM_VERSION failed"

got="$("$TMP/helm" version --template '{{.Version}}' 2>&1)" ||
	die "the new helm does not run: $got"
[[ "$got" == "$HELM_VERSION" ]] || die "the new helm reports $got, not $HELM_VERSION"
mv -f "$TMP/helm" "$HELM_BIN"

ELAPSED=$(($(date +%s) - START))
log "installed $HELM_BIN ($HELM_VERSION) in ${ELAPSED}s ($((ELAPSED / 60))m$((ELAPSED % 60))s)"
printf '%s\n' "$HELM_BIN"
