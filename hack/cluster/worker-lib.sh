# Worker nodes of the local cluster (sourced after common.sh by add-node.sh,
# remove-node.sh, node.sh and down.sh).
#
# A worker is a second kubelet + containerd pair on this same host, added to the
# running cluster without touching the first node or the control plane. Everything it
# owns is apart from the first node's:
#
#   state        $STATE/nodes/NAME/ (containerd root/state/runc/socket, kubelet root,
#                pod logs, CNI config and IPAM, pid files); logs in $STATE/logs/NAME/
#   address      10.77.0.N/32 on lo (kubelet's API on N:10250, its node InternalIP)
#   pods         10.244.(N-1).0/24 on bridge velocity-br(N-1)
#   cgroups      /NAME/kubepods in every v1 controller (the first node has /kubepods;
#                each kubelet garbage-collects pod cgroups under its own root only)
#   identity     system:node:NAME client certificate and a serving certificate for
#                NAME / 10.77.0.N, signed by the cluster CA
#   healthz      127.0.0.1:(10300+N)
#
# N (2..9) is chosen once by add-node.sh and kept in $STATE/nodes/NAME/index. There is
# no kube-proxy per worker: the first node's kube-proxy programs this host's iptables,
# which every bridge shares. A file $STATE/nodes/NAME/stopped marks a worker that
# node.sh stopped (simulated node loss): add-node.sh then leaves it down.

# worker_env NAME: set the W_* settings of an existing worker, and point PIDS and
# LOGS (used by start/healthy/pid_alive of common.sh) at its own directories.
worker_env() {
	W_NAME="$1"
	W_DIR="${WORKERS_DIR}/${W_NAME}"
	[[ -s ${W_DIR}/index ]] || die "no worker node ${W_NAME} (${W_DIR}/index missing)"
	W_INDEX="$(cat "${W_DIR}/index")"
	W_IP="10.77.0.${W_INDEX}"
	W_BRIDGE="velocity-br$((W_INDEX - 1))"
	W_POD_CIDR="10.244.$((W_INDEX - 1)).0/24"
	W_CGROUP="/${W_NAME}"
	W_CONTAINERD_DIR="${W_DIR}/containerd"
	W_SOCK="${W_CONTAINERD_DIR}/containerd.sock"
	W_HEALTHZ_PORT=$((10300 + W_INDEX))
	PIDS="${W_DIR}/pids"
	LOGS="${STATE}/logs/${W_NAME}"
}

# valid_worker_name NAME: a DNS label that is not the first node's name.
valid_worker_name() {
	[[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$ ]] && [[ $1 != "${NODE_NAME}" ]]
}

worker_names() {
	local d
	for d in "${WORKERS_DIR}"/*/; do
		[[ -s ${d}index ]] && basename "${d}"
	done
	return 0
}

# containerd_up SOCKET: does a containerd answer on SOCKET? (The socket file outlives a
# killed containerd.)
containerd_up() { [[ -S $1 ]] && timeout 10 ctr --address "$1" version >/dev/null 2>&1; }

# Every cgroup hierarchy: the v1 controllers and the named "systemd" one, which the kubelet
# checks, and the cgroup2 "unified" one, where it creates kubepods too.
cgroup_controllers() {
	local d
	for d in /sys/fs/cgroup/*/; do
		d="${d%/}"
		[[ -L ${d} ]] && continue
		[[ -e ${d}/cgroup.procs ]] && echo "${d}"
	done
	return 0
}

# worker_cgroups: create /NAME in every controller (kubelet refuses a cgroupRoot that
# does not exist). A new cpuset cgroup starts with no CPUs and no memory nodes: copy
# the parent's, or nothing could run in it.
worker_cgroups() {
	local c
	for c in $(cgroup_controllers); do
		mkdir -p "${c}${W_CGROUP}"
		if [[ ${c##*/} == cpuset && -z "$(cat "${c}${W_CGROUP}/cpuset.cpus")" ]]; then
			cat "${c}/cpuset.cpus" >"${c}${W_CGROUP}/cpuset.cpus"
			cat "${c}/cpuset.mems" >"${c}${W_CGROUP}/cpuset.mems"
		fi
	done
}

# worker_start: start the worker's containerd and kubelet (configuration rewritten,
# running components left alone) and wait until both answer.
worker_start() {
	mkdir -p "${PIDS}" "${LOGS}" "${W_DIR}/kubelet" "${W_DIR}/pod-logs"
	ip addr replace "${W_IP}/32" dev "${NODE_IF}"
	worker_cgroups
	write_containerd_config "${W_CONTAINERD_DIR}" "${W_DIR}/cni/net.d"
	write_cni_conflist "${W_DIR}/cni/net.d/10-velocity.conflist" "${W_BRIDGE}" "${W_POD_CIDR}" "${W_DIR}/cni/networks"
	start containerd containerd --config "${W_CONTAINERD_DIR}/config.toml"
	healthy containerd 30 "its socket" ctr --address "${W_SOCK}" version
	import_pause_image_into "${W_SOCK}"
	write_kubelet_config "${W_DIR}/kubelet-config.yaml" "${W_IP}" "${W_SOCK}" "${W_HEALTHZ_PORT}" \
		"kubelet-serving-${W_NAME}" "${W_DIR}/pod-logs" "${W_CGROUP}"
	start kubelet "${BIN}/kubelet" --config="${W_DIR}/kubelet-config.yaml" \
		--kubeconfig="${KUBECONFIGS}/kubelet-${W_NAME}.kubeconfig" --root-dir="${W_DIR}/kubelet" \
		--cert-dir="${W_DIR}/kubelet/pki" --hostname-override="${W_NAME}" --node-ip="${W_IP}" \
		--v=1
	healthy kubelet 60 "/healthz" curl_ok "http://127.0.0.1:${W_HEALTHZ_PORT}/healthz"
}

# import_pause_image_into SOCKET: the sandbox image, from the first node's containerd.
import_pause_image_into() {
	has_line "$(ctr --address "$1" -n k8s.io images ls -q)" "${PAUSE_IMAGE}" && return 0
	copy_images "$1" "${PAUSE_IMAGE}"
}

# copy_images SOCKET REF...: export REFs from the first node's containerd, import them
# (unpacked) into the containerd at SOCKET.
copy_images() {
	local sock="$1"; shift
	local archive
	archive="$(mktemp "${WORKERS_DIR}/images.XXXXXX.tar")"
	# shellcheck disable=SC2064 # expand now: the path is local to this call
	trap "rm -f '${archive}'" RETURN
	ctr --address "${CONTAINERD_SOCK}" -n k8s.io images export "${archive}" "$@"
	ctr --address "${sock}" -n k8s.io images import --no-unpack=false "${archive}" >/dev/null
	log "imported into ${sock##"${STATE}"/}: $*"
}

# image_digests SOCKET: "REF DIGEST" of every tagged image (not the sha256:... aliases).
image_digests() {
	ctr --address "$1" -n k8s.io images ls 2>/dev/null | awk 'NR > 1 && $1 !~ /^sha256:/ {print $1, $3}' | sort
}

# sync_images: give the worker every tagged image of the first node that it lacks or
# has in another version, so pods run the same images wherever they are scheduled.
sync_images() {
	local first mine ref digest missing=()
	first="$(image_digests "${CONTAINERD_SOCK}")"
	mine="$(image_digests "${W_SOCK}")"
	while read -r ref digest; do
		[[ -n ${ref} ]] || continue
		has_line "${mine}" "${ref} ${digest}" || missing+=("${ref}")
	done <<<"${first}"
	((${#missing[@]})) || return 0
	copy_images "${W_SOCK}" "${missing[@]}"
}

node_is_ready() { # NAME
	[[ "$(kubectl_ get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# kill_worker_processes: SIGKILL, without any grace, the worker's kubelet, containerd,
# the shims serving its containerd and every process in its cgroups (the pods).
kill_worker_processes() {
	local name pid
	for name in kubelet containerd; do
		if pid_alive "${name}"; then kill -KILL "$(cat "${PIDS}/${name}.pid")" 2>/dev/null || true; fi
	done
	for pid in $(pgrep -f containerd-shim 2>/dev/null); do
		if [[ "$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" == *"${W_SOCK} "* ]]; then
			kill -KILL "${pid}" 2>/dev/null || true
		fi
	done
	# Container processes outlive their shim: kill what the worker's cgroups hold
	# until they are empty (a dying process may still be listed for a moment).
	local c procs deadline=$((SECONDS + 20))
	while :; do
		procs=""
		for c in $(cgroup_controllers); do
			[[ -d ${c}${W_CGROUP} ]] || continue
			procs+="$(find "${c}${W_CGROUP}" -name cgroup.procs -exec cat {} + 2>/dev/null)"$'\n'
		done
		procs="$(sort -u <<<"${procs}" | sed '/^$/d')"
		[[ -z ${procs} ]] && break
		((SECONDS < deadline)) || { log "warning: processes left in ${W_CGROUP}: ${procs//$'\n'/ }"; break; }
		for pid in ${procs}; do kill -KILL "${pid}" 2>/dev/null || true; done
		sleep 0.2
	done
	for name in kubelet containerd; do
		while pid_alive "${name}"; do sleep 0.1; done
	done
}

# remove_worker: stop the worker and remove everything it put on the machine (its
# pods should be deleted through the API first, so CNI DEL cleans their networks).
remove_worker() {
	local c id m
	if containerd_up "${W_SOCK}"; then
		local k=(ctr --address "${W_SOCK}" -n k8s.io)
		for id in $("${k[@]}" tasks ls -q 2>/dev/null); do "${k[@]}" tasks kill -s SIGKILL "${id}" >/dev/null 2>&1 || true; done
		for id in $("${k[@]}" tasks ls -q 2>/dev/null); do "${k[@]}" tasks delete -f "${id}" >/dev/null 2>&1 || true; done
	fi
	kill_worker_processes
	rm -f "${PIDS}"/*.pid
	# Deepest first: netns bind mounts, pod volumes (tmpfs), overlay rootfs, shm.
	for m in $(findmnt -rn -o TARGET | grep -F "${W_DIR}/" | sort -r); do
		umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || log "warning: cannot unmount ${m}"
	done
	for c in $(cgroup_controllers); do
		[[ -d ${c}${W_CGROUP} ]] || continue
		find "${c}${W_CGROUP}" -depth -type d -exec rmdir {} \; 2>/dev/null
		[[ -d ${c}${W_CGROUP} ]] && log "warning: cgroup ${c}${W_CGROUP} still has processes"
	done
	ip link show "${W_BRIDGE}" >/dev/null 2>&1 && ip link delete "${W_BRIDGE}"
	if [[ "$(ip -o addr show dev "${NODE_IF}" 2>/dev/null)" == *" ${W_IP}/32 "* ]]; then
		ip addr del "${W_IP}/32" dev "${NODE_IF}"
	fi
	if command -v conntrack >/dev/null; then
		local cidr
		for cidr in "${W_POD_CIDR}" "${W_IP}/32"; do
			conntrack -D -s "${cidr}" >/dev/null 2>&1 || true
			conntrack -D -d "${cidr}" >/dev/null 2>&1 || true
		done
	fi
	find /var/log/containers -maxdepth 1 -type l -lname "${W_DIR}/*" -delete 2>/dev/null || true
	if [[ -n "$(findmnt -rn -o TARGET | grep -F "${W_DIR}/")" ]]; then
		log "warning: mounts remain under ${W_DIR}; not deleting it"
		return 1
	fi
	rm -rf "${W_DIR}" "${LOGS}"
	rm -f "${PKI}/kubelet-${W_NAME}".{crt,key} "${PKI}/kubelet-serving-${W_NAME}".{crt,key} \
		"${KUBECONFIGS}/kubelet-${W_NAME}.kubeconfig"
}

# forward_rules_if_cluster: rewrite VELOCITY-FORWARD without a removed worker's bridge
# (only while the cluster's chain exists: down.sh removes it altogether).
forward_rules_if_cluster() {
	iptables -S "${FORWARD_CHAIN}" >/dev/null 2>&1 || return 0
	forward_rules
}
