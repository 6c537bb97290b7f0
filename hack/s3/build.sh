#!/usr/bin/env bash
# Build the S3-compatible server the backup tests run, if it is not in the cache.
#
# Usage: hack/s3/build.sh          build when missing; the binary's path is the last line
#        hack/s3/build.sh --path   only print where the binary is (no build, no check)
#
# The version comes from the wrapper module hack/s3/go.mod (single source of truth):
# github.com/versity/versitygw, a real S3 gateway (SigV4 authentication, buckets as
# directories of a POSIX backend), built from the Go module proxy like hack/k8s-build.sh
# builds Kubernetes. The static binary lands in $VELOCITY_S3_CACHE (default
# ~/.cache/velocity-s3)/versitygw-VERSION/versitygw; a directory that exists is complete
# (the build goes to a temporary directory renamed at the end) and is never rebuilt.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VELOCITY_S3_CACHE:-${HOME}/.cache/velocity-s3}"
export PATH="${PATH}:/usr/local/go/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

log() { echo "s3-build: $*" >&2; }
die() { echo "s3-build: error: $*" >&2; exit 1; }

VERSION="$(awk '$1 == "require" && $2 == "github.com/versity/versitygw" { print $3; exit }' "${HERE}/go.mod")"
[[ -n ${VERSION} ]] || die "cannot read the versitygw version from ${HERE}/go.mod"
OUT="${CACHE}/versitygw-${VERSION}"
BIN="${OUT}/versitygw"

case "${1:-}" in
--path) echo "${BIN}"; exit 0 ;;
"") ;;
*) die "unknown argument: $1 (see the header of $0)" ;;
esac

if [[ -x ${BIN} ]]; then
	echo "${BIN}"
	exit 0
fi
command -v go >/dev/null || die "go is not installed (expected /usr/local/go/bin/go, Go >= 1.25)"
# One build at a time per cache: a second caller waits, then finds the binary built.
mkdir -p "${CACHE}"
exec 9>"${CACHE}/.build.lock"
flock 9
if [[ ! -x ${BIN} ]]; then
	tmp="${OUT}.tmp.$$"
	rm -rf "${tmp}"; mkdir -p "${tmp}"
	trap 'rm -rf "'"${tmp}"'"' EXIT
	start=${SECONDS}
	log "building versitygw ${VERSION} from the Go module proxy (go build, nice 19)"
	(cd "${HERE}" && nice -n 19 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" \
		-o "${tmp}/versitygw" github.com/versity/versitygw/cmd/versitygw)
	rm -rf "${OUT}"; mv "${tmp}" "${OUT}"
	trap - EXIT
	log "built versitygw ${VERSION} in $((SECONDS - start))s"
fi
[[ -x ${BIN} ]] || die "build finished but ${BIN} is missing"
echo "${BIN}"
