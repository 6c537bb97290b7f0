#!/usr/bin/env bash
# Simulate the loss of a worker node of the local cluster, and its return:
#
#   hack/cluster/node.sh stop NAME     SIGKILL its kubelet, its containerd, the shims and
#                                      every process of its pods: nothing is told, no
#                                      pod terminates gracefully, nothing is cleaned up
#   hack/cluster/node.sh start NAME    start its containerd and kubelet again; the kubelet
#                                      finds the dead sandboxes and restarts the pods
#   hack/cluster/node.sh status NAME   prints "running", "stopped" or "broken"
#
# Only workers added by add-node.sh: the first node runs the control plane's DNS and
# kube-proxy and is never stopped. While stopped, a marker file keeps add-node.sh (run
# by every `make e2e`) from restarting the worker behind the test's back. The API
# server notices nothing at once: the Node turns NotReady only when the node
# controller's grace period (~50 s) passes, and its pods stay "Running" until then.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/worker-lib.sh"
require_root

(($# == 2)) || die "usage: $0 stop|start|status NAME"
action="$1"
valid_worker_name "$2" || die "'$2' is not a worker node name (the first node, ${NODE_NAME}, cannot be stopped)"
[[ -s ${WORKERS_DIR}/$2/index ]] || die "no worker node $2 (add it with hack/cluster/add-node.sh $2)"
worker_env "$2"

case "${action}" in
stop)
	touch "${W_DIR}/stopped"
	kill_worker_processes
	rm -f "${PIDS}"/*.pid
	log "worker ${W_NAME} stopped (kubelet, containerd and its pods killed)"
	;;
start)
	[[ -s ${ADMIN_KUBECONFIG} ]] || die "the local cluster is not running"
	BIN="$("${HACK}/k8s-build.sh" --bin-dir)"
	exec {setup_lock}>"/run/velocity-e2e-setup.lock"
	flock "${setup_lock}"
	rm -f "${W_DIR}/stopped"
	worker_start
	sync_images # images imported while it was down
	flock --unlock "${setup_lock}"
	if ! wait_until 120 "node ${W_NAME} Ready" node_is_ready "${W_NAME}"; then
		kubectl_ describe node "${W_NAME}" >&2 || true
		die "node ${W_NAME} did not become Ready again; logs in ${LOGS}"
	fi
	;;
status)
	if [[ -e ${W_DIR}/stopped ]]; then
		echo stopped
	elif pid_alive kubelet && pid_alive containerd; then
		echo running
	else
		echo broken
	fi
	;;
*) die "usage: $0 stop|start|status NAME" ;;
esac
