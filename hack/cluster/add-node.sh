#!/usr/bin/env bash
# Add a worker node to the RUNNING local cluster (so that a node can be lost):
#
#   hack/cluster/add-node.sh NAME       e.g. velocity-node-2
#
# Starts the worker's own containerd and kubelet (worker-lib.sh says what is theirs),
# copies every tagged image of the first node into its containerd, lets pods on every
# bridge reach each other, and waits until the Node is Ready. The first node and the
# control plane are never touched.
#
# Idempotent: on an existing worker it starts what is not running, brings its images
# up to date with the first node's, and waits for Ready. A worker stopped by
# `node.sh stop` (a simulated node loss) is left stopped. Undo: remove-node.sh NAME
# (down.sh removes every worker too).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/worker-lib.sh"
require_root

(($# == 1)) || die "usage: $0 NAME"
valid_worker_name "$1" || die "invalid worker name '$1' (a DNS label, not ${NODE_NAME})"
if ! pid_alive kube-apiserver || ! pid_alive containerd || [[ ! -s ${ADMIN_KUBECONFIG} ]]; then
	die "the local cluster is not running: run 'make cluster-up' first"
fi
BIN="$("${HACK}/k8s-build.sh" --bin-dir)"

# One setup at a time: the lock hack/e2e.sh holds while it brings the cluster up and
# imports images, so a worker never copies images that are being imported.
exec {setup_lock}>"/run/velocity-e2e-setup.lock"
flock "${setup_lock}"

# pick_index: the smallest N in 2..9 no other worker uses.
pick_index() {
	local n name used=" "
	for name in $(worker_names); do used+="$(cat "${WORKERS_DIR}/${name}/index") "; done
	for n in 2 3 4 5 6 7 8 9; do
		[[ ${used} == *" ${n} "* ]] || { echo "${n}"; return 0; }
	done
	die "no free worker index (at most 8 workers)"
}

main() {
	local name="$1" t0=${SECONDS}
	mkdir -p "${WORKERS_DIR}"
	if [[ ! -s ${WORKERS_DIR}/${name}/index ]]; then
		local index
		index="$(pick_index)"
		mkdir -p "${WORKERS_DIR}/${name}"
		echo "${index}" >"${WORKERS_DIR}/${name}/index.tmp"
		mv "${WORKERS_DIR}/${name}/index.tmp" "${WORKERS_DIR}/${name}/index"
		log "new worker ${name}: index ${index}"
	fi
	worker_env "${name}"
	if [[ -e ${W_DIR}/stopped ]]; then
		log "worker ${name} is stopped (node.sh stop); leaving it down: node.sh start ${name}"
		return 0
	fi
	echo "${W_BRIDGE}" >"${W_DIR}/bridge"
	forward_rules

	cert "kubelet-${name}" "system:node:${name}" system:nodes "" clientAuth
	cert "kubelet-serving-${name}" "${name}" "" "DNS:${name},IP:${W_IP}" serverAuth
	kubeconfig "kubelet-${name}" "system:node:${name}" "kubelet-${name}"

	worker_start
	sync_images
	flock --unlock "${setup_lock}"
	if ! wait_until 120 "node ${name} Ready" node_is_ready "${name}"; then
		kubectl_ describe node "${name}" >&2 || true
		die "node ${name} did not become Ready; logs in ${LOGS}"
	fi
	log "worker ${name} (${W_IP}, pods ${W_POD_CIDR} on ${W_BRIDGE}) up in $((SECONDS - t0))s"
}

main "$@"
