#!/usr/bin/env bash
# Tear down the local test cluster and everything it left on the machine.
#
# Order: stop controllers (nothing recreates pods), let kubelet delete the pods
# (CNI DEL removes veths, IPAM entries, netns), remove the worker nodes
# (remove-node.sh's cleanup), stop the first node and the control plane,
# kill what is left of containers, unmount, remove cgroups, iptables chains,
# interfaces, conntrack entries, restore sysctls, delete $VELOCITY_CLUSTER_DIR.
# Safe to run when nothing is up, twice, or after a half-finished up.sh.
# Only processes recorded in $STATE/pids, and containerd shims serving our socket,
# are signalled.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/worker-lib.sh"
require_root

stop_component() { # NAME [TIMEOUT]
	local name="$1" timeout="${2:-20}" f="${PIDS}/$1.pid" pid
	[[ -f ${f} ]] || return 0
	pid="$(cat "${f}")"
	if pid_alive "${name}"; then # never signal a process that merely reuses the pid
		log "stopping ${name} (pid ${pid})"
		kill -TERM "${pid}" 2>/dev/null
		local deadline=$((SECONDS + timeout))
		while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -KILL "${pid}" 2>/dev/null || true
		while kill -0 "${pid}" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "${f}"
}

drain_pods() {
	pid_alive kube-apiserver && pid_alive kubelet && [[ -s ${ADMIN_KUBECONFIG} ]] || return 0
	BIN="$("${HACK}/k8s-build.sh" --bin-dir)"
	[[ -x ${BIN}/kubectl ]] || return 0
	log "deleting all pods (kubelet tears down their sandboxes and networks)"
	kubectl_ delete pods --all --all-namespaces --grace-period=2 --timeout=60s --wait=true >/dev/null 2>&1 || true
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		[[ -z "$(kubectl_ get pods -A -o name 2>/dev/null)" ]] && break
		kubectl_ delete pods --all --all-namespaces --force --grace-period=0 >/dev/null 2>&1 || true
		sleep 1
	done
	# Give kubelet a moment to stop the sandboxes of pods deleted with --force.
	deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)) && [[ -n "$(ctr --address "${CONTAINERD_SOCK}" -n k8s.io tasks ls -q 2>/dev/null)" ]]; do sleep 1; done
}

# remove_workers: every worker node add-node.sh added (after drain_pods, so their
# kubelets have torn down their pods' networks; stopped workers are killed anyway).
remove_workers() {
	local name
	for name in $(worker_names); do
		log "removing worker node ${name}"
		(worker_env "${name}" && remove_worker) || log "warning: worker ${name} not fully removed"
	done
}

kill_containers() {
	[[ -S ${CONTAINERD_SOCK} ]] && pid_alive containerd || return 0
	local c=(ctr --address "${CONTAINERD_SOCK}")
	local ns id
	for ns in $("${c[@]}" namespaces ls -q 2>/dev/null); do
		for id in $("${c[@]}" -n "${ns}" tasks ls -q 2>/dev/null); do
			"${c[@]}" -n "${ns}" tasks kill -s SIGKILL "${id}" >/dev/null 2>&1 || true
		done
		sleep 1
		for id in $("${c[@]}" -n "${ns}" tasks ls -q 2>/dev/null); do
			"${c[@]}" -n "${ns}" tasks delete -f "${id}" >/dev/null 2>&1 || true
		done
		for id in $("${c[@]}" -n "${ns}" containers ls -q 2>/dev/null); do
			"${c[@]}" -n "${ns}" containers delete "${id}" >/dev/null 2>&1 || true
		done
	done
}

kill_shims() { # containerd-shim-runc-v2 processes serving our containerd
	local pid
	for pid in $(pgrep -f containerd-shim 2>/dev/null); do
		if [[ "$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" == *"${CONTAINERD_SOCK}"* ]]; then
			kill -KILL "${pid}" 2>/dev/null || true
		fi
	done
	# Container processes whose cgroup is ours (kubepods) and that survived their shim.
	local cg
	for cg in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
		[[ -d ${cg} ]] || continue
		find "${cg}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
			kill -KILL "${pid}" 2>/dev/null || true
		done
	done
}

unmount_state() {
	local m
	[[ -d ${STATE} ]] || return 0
	# Deepest first; netns bind mounts, pod volumes (tmpfs), overlay rootfs, shm.
	for m in $(findmnt -rn -o TARGET | grep -F "${STATE}/" | sort -r); do
		umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || log "warning: cannot unmount ${m}"
	done
}

remove_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
		[[ -d ${d} ]] || continue
		find "${d}" -depth -type d -exec rmdir {} \; 2>/dev/null
		[[ -d ${d} ]] && log "warning: cgroup ${d} still has processes"
	done
}

# remove_chains TOOL TABLE: delete rules that jump to and chains named KUBE-*, CNI-*,
# VELOCITY-* (ours, kube-proxy's, kubelet's, the CNI plugins'); leave the rest alone.
remove_chains() {
	local ipt="$1" table="$2" rule chain
	"${ipt}" -t "${table}" -S >/dev/null 2>&1 || return 0
	while read -r rule; do
		eval "${ipt} -t ${table} ${rule/-A /-D }" 2>/dev/null || true
	done < <("${ipt}" -t "${table}" -S | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' | grep -E -- '-j (KUBE|CNI|VELOCITY)-')
	for chain in $("${ipt}" -t "${table}" -S | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|VELOCITY)-/ {print $2}'); do
		"${ipt}" -t "${table}" -F "${chain}" 2>/dev/null || true
	done
	for chain in $("${ipt}" -t "${table}" -S | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|VELOCITY)-/ {print $2}'); do
		"${ipt}" -t "${table}" -X "${chain}" 2>/dev/null || log "warning: cannot delete ${ipt} ${table} ${chain}"
	done
}

clean_network() {
	local ipt table
	for ipt in iptables ip6tables; do
		command -v "${ipt}" >/dev/null || continue
		for table in filter nat mangle raw; do remove_chains "${ipt}" "${table}"; done
	done
	ip link show "${BRIDGE}" >/dev/null 2>&1 && ip link delete "${BRIDGE}"
	if node_ip_assigned; then ip addr del "${NODE_IP}/32" dev "${NODE_IF}"; fi
	# veths of pods whose netns vanished without CNI DEL go with the bridge; any
	# other veth is not ours.
	if command -v conntrack >/dev/null; then
		for cidr in "${CLUSTER_CIDR}" "${SERVICE_CIDR}" "${NODE_IP}/32"; do
			conntrack -D -s "${cidr}" >/dev/null 2>&1 || true
			conntrack -D -d "${cidr}" >/dev/null 2>&1 || true
		done
	fi
	if [[ -f ${STATE}/sysctl.orig ]]; then
		while IFS='=' read -r name value; do sysctl -qw "${name}=${value}" || true; done <"${STATE}/sysctl.orig"
	fi
}

main() {
	if [[ ! -d ${STATE} ]] && ! node_ip_assigned; then
		log "no local cluster (${STATE} absent)"
		clean_network
		remove_cgroups
		return 0
	fi
	stop_component kube-controller-manager
	stop_component kube-scheduler
	drain_pods
	remove_workers
	stop_component velocity-local-provisioner
	stop_component coredns
	stop_component kubelet
	stop_component kube-proxy
	kill_containers
	stop_component containerd
	kill_shims
	stop_component kube-apiserver
	stop_component etcd
	local leftover
	for leftover in "${PIDS}"/*.pid; do [[ -e ${leftover} ]] && stop_component "$(basename "${leftover}" .pid)"; done
	unmount_state
	remove_cgroups
	clean_network
	find /var/log/containers -maxdepth 1 -type l -lname "${STATE}/*" -delete 2>/dev/null || true
	rmdir /var/log/containers 2>/dev/null || true
	if [[ -n "$(findmnt -rn -o TARGET | grep -F "${STATE}/")" ]]; then
		die "mounts remain under ${STATE}; not deleting it: $(findmnt -rn -o TARGET | grep -F "${STATE}/" | head -3)"
	fi
	rm -rf "${STATE}"
	log "local cluster removed"
}

main "$@"
