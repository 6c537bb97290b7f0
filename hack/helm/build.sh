#!/usr/bin/env bash
# Build `helm` from the Go module proxy if it is not in the cache.
#
# Usage: hack/helm/build.sh          build when missing; the binary's path is the last line
#        hack/helm/build.sh --path   only print where the binary is (no build, no check)
#
# The version comes from the wrapper module hack/helm/go.mod (single source of truth):
# helm.sh/helm/v3, whose go.mod has no replace directives, so the wrapper selects exactly
# the dependency versions of the release. The static binary lands in $VELOCITY_HELM_CACHE
# (default ~/.cache/velocity-helm)/helm-VERSION/helm; a directory that exists is complete
# (the build goes to a temporary directory renamed at the end) and is never rebuilt.
# Like helm's own Makefile, the build stamps the version (`helm version`) and the
# Kubernetes version its client libraries target (the default .Capabilities.KubeVersion
# and the lint rules' deprecation checks).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VELOCITY_HELM_CACHE:-${HOME}/.cache/velocity-helm}"
export PATH="${PATH}:/usr/local/go/bin"
# -mod=mod: go.mod and go.sum are tidy, so nothing is written; a go.sum entry missing
# for this platform is fetched (and checked against the checksum database) instead of failing.
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { echo "helm-build: $*" >&2; }
die() { echo "helm-build: error: $*" >&2; exit 1; }

module_version() {
	awk -v m="$1" '$1 == "require" && $2 == m { print $3; exit } $1 == m && $2 ~ /^v/ { print $2; exit }' "${HERE}/go.mod"
}

VERSION="$(module_version helm.sh/helm/v3)"
CLIENT_GO="$(module_version k8s.io/client-go)"
[[ -n ${VERSION} && -n ${CLIENT_GO} ]] || die "cannot read the helm and client-go versions from ${HERE}/go.mod"
OUT="${CACHE}/helm-${VERSION}"
BIN="${OUT}/helm"

case "${1:-}" in
--path) echo "${BIN}"; exit 0 ;;
"") ;;
*) die "unknown argument: $1 (see the header of $0)" ;;
esac

if [[ -x ${BIN} ]]; then
	echo "${BIN}"
	exit 0
fi
command -v go >/dev/null || die "go is not installed (expected /usr/local/go/bin/go, Go >= 1.26)"
# One build at a time per cache: a second caller waits, then finds the binary built.
mkdir -p "${CACHE}"
exec 9>"${CACHE}/.build.lock"
flock 9
if [[ ! -x ${BIN} ]]; then
	tmp="${OUT}.tmp.$$"
	rm -rf "${tmp}"; mkdir -p "${tmp}"
	trap 'rm -rf "'"${tmp}"'"' EXIT
	# client-go v0.X.Y targets Kubernetes 1.X (helm's Makefile: major = 0 + 1).
	minor="${CLIENT_GO#v0.}"; minor="${minor%%.*}"
	ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${VERSION}"
	ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${minor}"
	done
	start=${SECONDS}
	log "building helm ${VERSION} from the Go module proxy (go build, nice 19)"
	(cd "${HERE}" && nice -n 19 go build -trimpath -ldflags "${ldflags}" -o "${tmp}/helm" helm.sh/helm/v3/cmd/helm)
	rm -rf "${OUT}"; mv "${tmp}" "${OUT}"
	trap - EXIT
	log "built helm ${VERSION} in $((SECONDS - start))s"
fi
[[ -x ${BIN} ]] || die "build finished but ${BIN} is missing"
echo "${BIN}"
