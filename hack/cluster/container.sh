#!/usr/bin/env bash
# Send a signal to a container's main process on a node of the local cluster, from
# outside the container (what the e2e suite's --container-signal runs):
#
#   hack/cluster/container.sh NODE CONTAINER_ID SIGNAL
#
# NODE is the pod's spec.nodeName (the first node or a worker of add-node.sh),
# CONTAINER_ID the id in the pod's status.containerStatuses[].containerID (with or
# without its "containerd://" prefix), SIGNAL a name such as SIGSTOP, SIGCONT or
# SIGKILL. `ctr tasks kill` has runc deliver it from the host's PID namespace: from
# inside the container (kubectl exec) the kernel drops SIGSTOP and SIGKILL sent to the
# namespace's init, which the engine is. After SIGKILL the kubelet restarts the
# container in the same pod, on the same volumes. On kind the equivalent is
# `docker exec NODE ctr -n k8s.io tasks kill --signal SIGNAL ID`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/worker-lib.sh"
require_root

(($# == 3)) || die "usage: $0 NODE CONTAINER_ID SIGNAL"
node="$1" id="${2#containerd://}" signal="$3"
[[ ${id} =~ ^[0-9a-f]{64}$ ]] || die "'$2' is not a containerd container id"
[[ ${signal} =~ ^SIG[A-Z0-9]+$ ]] || die "'${signal}' is not a signal name (SIGSTOP, SIGCONT, SIGKILL, ...)"
if [[ ${node} == "${NODE_NAME}" ]]; then
	sock="${CONTAINERD_SOCK}"
else
	valid_worker_name "${node}" || die "'${node}' is not a node of the local cluster"
	worker_env "${node}"
	sock="${W_SOCK}"
fi
containerd_up "${sock}" || die "the containerd of node ${node} is not running (${sock})"
ctr --address "${sock}" -n k8s.io tasks kill --signal "${signal}" "${id}"
