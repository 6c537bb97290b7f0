#!/usr/bin/env bash
# Build the Kubernetes test binaries that are missing from the cache.
#
# Usage: hack/k8s-build.sh            build what is missing, print the bin dir last
#        hack/k8s-build.sh --bin-dir  only print the bin dir (no build, no check)
#        hack/k8s-build.sh --check    exit 1 (with the missing names) unless all exist
#
# Versions come from the wrapper modules (single source of truth):
#   hack/k8s/go.mod      k8s.io/kubernetes  -> kube-apiserver, kube-controller-manager,
#                                              kube-scheduler, kubelet, kube-proxy, kubectl
#                                              and our velocity-local-provisioner, velocity-pause
#   hack/etcd/go.mod     go.etcd.io/etcd/server/v3 -> etcd
#   hack/coredns/go.mod  github.com/coredns/coredns -> coredns (cluster zone only)
#
# Binaries land in $VELOCITY_K8S_CACHE (default ~/.cache/velocity-k8s), one directory
# per component and version, e.g. ~/.cache/velocity-k8s/kubernetes-v1.34.4/. A directory
# that exists is complete (builds go to a temporary directory renamed at the end) and is
# never rebuilt. $CACHE/bin-<key>/ holds symlinks to the whole set; its path is the last
# line of output so callers can `BIN=$(hack/k8s-build.sh | tail -1)`.
#
# All Kubernetes components are built by ONE `go build` so that shared packages are
# compiled once; -trimpath and -s -w keep the output small. Parallelism is the number
# of CPUs (-p), and the build runs under nice so the machine stays usable.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VELOCITY_K8S_CACHE:-${HOME}/.cache/velocity-k8s}"
export PATH="${PATH}:/usr/local/go/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly" CGO_ENABLED=0

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { echo "k8s-build: $*" >&2; }
die() { echo "k8s-build: error: $*" >&2; exit 1; }

# module_version DIR MODULE -> the version DIR/go.mod requires for MODULE
module_version() {
	awk -v m="$2" '$1 == "require" && $2 == m { print $3; exit } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}

KUBE_VERSION="$(module_version "${HACK}/k8s" k8s.io/kubernetes)"
ETCD_VERSION="$(module_version "${HACK}/etcd" go.etcd.io/etcd/server/v3)"
COREDNS_VERSION="$(module_version "${HACK}/coredns" github.com/coredns/coredns)"
[[ -n "${KUBE_VERSION}" && -n "${ETCD_VERSION}" && -n "${COREDNS_VERSION}" ]] ||
	die "cannot read versions from hack/{k8s,etcd,coredns}/go.mod"
# Our own tools change with their source, not with a release: key them by content.
TOOLS_KEY="$(cat "${HACK}/k8s/go.mod" "${HACK}/k8s/go.sum" "${HACK}"/k8s/cmd/*/*.go | sha256sum | cut -c1-12)"

KUBE_DIR="${CACHE}/kubernetes-${KUBE_VERSION}"
ETCD_DIR="${CACHE}/etcd-${ETCD_VERSION}"
COREDNS_DIR="${CACHE}/coredns-${COREDNS_VERSION}"
TOOLS_DIR="${CACHE}/tools-${TOOLS_KEY}"
BIN_DIR="${CACHE}/bin-${KUBE_VERSION}-etcd-${ETCD_VERSION}-coredns-${COREDNS_VERSION}-tools-${TOOLS_KEY}"

all_binaries() {
	for c in "${K8S_CMDS[@]}"; do echo "${KUBE_DIR}/${c}"; done
	echo "${TOOLS_DIR}/velocity-local-provisioner"
	echo "${TOOLS_DIR}/velocity-pause"
	echo "${ETCD_DIR}/etcd"
	echo "${COREDNS_DIR}/coredns"
}

link_bin_dir() {
	mkdir -p "${BIN_DIR}"
	local b
	for b in $(all_binaries); do ln -sfn "${b}" "${BIN_DIR}/$(basename "${b}")"; done
}

case "${1:-}" in
--bin-dir) echo "${BIN_DIR}"; exit 0 ;;
--check)
	missing=()
	for b in $(all_binaries); do [[ -x "${b}" ]] || missing+=("${b}"); done
	if ((${#missing[@]})); then
		echo "missing Kubernetes test binaries (run 'make k8s-bins'): ${missing[*]}" >&2
		exit 1
	fi
	link_bin_dir
	echo "${BIN_DIR}"
	exit 0 ;;
"") ;;
*) die "unknown argument: $1 (see the header of $0)" ;;
esac

command -v go >/dev/null || die "go is not installed (expected /usr/local/go/bin/go, Go >= 1.25)"
# One build at a time per cache: a second caller waits, then finds everything built.
mkdir -p "${CACHE}"
exec 9>"${CACHE}/.build.lock"
flock 9
JOBS="${VELOCITY_BUILD_JOBS:-$(nproc)}"

# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE... -> builds into OUT_DIR atomically
go_build() {
	local mod="$1" out="$2" ldflags="$3"; shift 3
	local tmp="${out}.tmp.$$"
	rm -rf "${tmp}"; mkdir -p "${tmp}"
	trap 'rm -rf "'"${tmp}"'"' EXIT
	local start=${SECONDS}
	log "building $(basename "${out}"): $* (go build -p ${JOBS})"
	(cd "${mod}" && nice -n 10 go build -p "${JOBS}" -trimpath -ldflags "-s -w ${ldflags}" -o "${tmp}/" "$@")
	rm -rf "${out}"; mv "${tmp}" "${out}"
	trap - EXIT
	log "built $(basename "${out}") in $((SECONDS - start))s"
}

built=0
if [[ ! -d "${KUBE_DIR}" ]]; then
	minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
	date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	ldflags=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
		ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
	done
	pkgs=()
	for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}"); done
	go_build "${HACK}/k8s" "${KUBE_DIR}" "${ldflags}" "${pkgs[@]}"
	built=1
fi
if [[ ! -d "${TOOLS_DIR}" ]]; then
	go_build "${HACK}/k8s" "${TOOLS_DIR}" "" ./cmd/velocity-local-provisioner ./cmd/velocity-pause
	built=1
fi
if [[ ! -d "${ETCD_DIR}" ]]; then
	go_build "${HACK}/etcd" "${ETCD_DIR}" "" go.etcd.io/etcd/server/v3
	mv "${ETCD_DIR}/v3" "${ETCD_DIR}/etcd" 2>/dev/null || mv "${ETCD_DIR}/server" "${ETCD_DIR}/etcd" 2>/dev/null || true
	built=1
fi
if [[ ! -d "${COREDNS_DIR}" ]]; then
	go_build "${HACK}/coredns" "${COREDNS_DIR}" "" .
	built=1
fi

for b in $(all_binaries); do [[ -x "${b}" ]] || die "build finished but ${b} is missing"; done
((built)) || log "all binaries present in ${CACHE}, nothing to build"
"${KUBE_DIR}/kubectl" version --client 2>/dev/null | head -1 >&2 || true
link_bin_dir
echo "${BIN_DIR}"
