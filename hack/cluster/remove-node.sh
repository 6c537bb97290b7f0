#!/usr/bin/env bash
# Remove a worker node that add-node.sh added, and everything it left on the machine:
#
#   hack/cluster/remove-node.sh NAME
#
# Cordons the Node and deletes its pods while its kubelet still runs (so CNI DEL frees
# their addresses and veths), deletes the Node object, stops kubelet and containerd,
# kills what is left of containers, unmounts and removes its state, cgroups, bridge,
# address and iptables rules. Safe on a stopped worker and on one that does not exist.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/worker-lib.sh"
require_root

(($# == 1)) || die "usage: $0 NAME"
valid_worker_name "$1" || die "invalid worker name '$1'"
if [[ ! -s ${WORKERS_DIR}/$1/index ]]; then
	log "no worker node $1"
	exit 0
fi
BIN="$("${HACK}/k8s-build.sh" --bin-dir)"
worker_env "$1"

exec {setup_lock}>"/run/velocity-e2e-setup.lock"
flock "${setup_lock}"

if pid_alive kubelet && [[ -x ${BIN}/kubectl && -s ${ADMIN_KUBECONFIG} ]]; then
	kubectl_ cordon "${W_NAME}" >/dev/null 2>&1 || true
	log "deleting the pods of ${W_NAME}"
	kubectl_ delete pods --all-namespaces --field-selector "spec.nodeName=${W_NAME}" \
		--grace-period=2 --timeout=60s --wait=true >/dev/null 2>&1 || true
fi
if [[ -x ${BIN}/kubectl && -s ${ADMIN_KUBECONFIG} ]]; then
	# Pods that could not terminate (kubelet down) would stay bound to a missing node.
	kubectl_ delete pods --all-namespaces --field-selector "spec.nodeName=${W_NAME}" \
		--force --grace-period=0 >/dev/null 2>&1 || true
	kubectl_ delete node "${W_NAME}" --ignore-not-found --timeout=30s >/dev/null 2>&1 || true
fi
remove_worker
forward_rules_if_cluster
log "worker ${W_NAME} removed"
