# Shared settings of the local test cluster (sourced by up.sh, down.sh, add-node.sh, ...).
#
# Every piece of state the cluster creates lives under $VELOCITY_CLUSTER_DIR
# (default /var/lib/velocity-cluster): certificates, etcd data, containerd's root and
# state (including network-namespace mounts and runc state), kubelet's root and pod
# logs, CNI IPAM, volumes, logs and pid files. Outside it the cluster creates only
# kernel state, which down.sh removes: the node address on lo, the pod bridge, iptables chains
# (KUBE-*, CNI-*, VELOCITY-*), cgroups named kubepods, conntrack entries and two
# sysctls (saved on the way up, restored on the way down).
#
# Addresses are private and local: the node's address is a /32 on loopback, pods
# live on a bridge that has no route out (VELOCITY-FORWARD drops forwarding between
# the bridge and any other interface), Services are virtual (kube-proxy).

STATE="${VELOCITY_CLUSTER_DIR:-/var/lib/velocity-cluster}"
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

NODE_NAME="velocity-node"
NODE_IF="lo"                 # holds NODE_IP (a /32; the kernel may lack the dummy driver)
NODE_IP="10.77.0.1"
BRIDGE="velocity-br0"
POD_CIDR="10.244.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
DNS_SERVICE_IP="10.96.0.10"
CLUSTER_DOMAIN="cluster.local"
API_PORT=6443
ETCD_PORT=32379
ETCD_PEER_PORT=32380
COREDNS_HEALTH_PORT=18080
COREDNS_READY_PORT=18181
FORWARD_CHAIN="VELOCITY-FORWARD"
PAUSE_IMAGE="docker.io/velocity/pause:dev"
PROVISIONER_NAME="velocity.dev/local-path"

PKI="${STATE}/pki"
LOGS="${STATE}/logs"
PIDS="${STATE}/pids"
KUBECONFIGS="${STATE}/kubeconfig"
ADMIN_KUBECONFIG="${KUBECONFIGS}/admin.kubeconfig"
CONTAINERD_DIR="${STATE}/containerd"
CONTAINERD_SOCK="${CONTAINERD_DIR}/containerd.sock"
# Worker nodes added to the running cluster by add-node.sh: one directory each
# (worker-lib.sh holds their settings).
WORKERS_DIR="${STATE}/nodes"

# Debian packages the cluster needs (command -> package).
declare -A PREREQS=(
	[containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
	[iptables]=iptables [ip6tables]=iptables [conntrack]=conntrack [socat]=socat
	[openssl]=openssl [ip]=iproute2 [nsenter]=util-linux [findmnt]=util-linux
	[ethtool]=ethtool [python3]=python3 [curl]=curl [sysctl]=procps [setsid]=util-linux
)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() { [[ ${EUID} -eq 0 ]] || die "$(basename "$0") must run as root (it manages containerd, iptables and interfaces)"; }

# pid_alive NAME: is the recorded process of component NAME running? The executable's
# name must match too: after a reboot or a killed session the pid may belong to another
# process by now.
pid_alive() {
	local f="${PIDS}/$1.pid" pid exe
	[[ -f ${f} ]] || return 1
	pid="$(cat "${f}")"
	exe="$(readlink "/proc/${pid}/exe" 2>/dev/null)" || return 1
	[[ ${exe##*/} == "$1" ]]
}

# has_line TEXT LINE: does TEXT contain LINE exactly? (No `cmd | grep -q` under
# pipefail: grep exits at the first match and cmd then fails with SIGPIPE.)
has_line() { [[ $'\n'"$1"$'\n' == *$'\n'"$2"$'\n'* ]]; }

# node_ip_assigned: is NODE_IP on NODE_IF?
node_ip_assigned() { [[ "$(ip -o addr show dev "${NODE_IF}" 2>/dev/null)" == *" ${NODE_IP}/32 "* ]]; }

# kubectl_ ARGS: kubectl as cluster-admin of this cluster.
kubectl_() { "${BIN}/kubectl" --kubeconfig "${ADMIN_KUBECONFIG}" "$@"; }

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: poll COMMAND every half second.
wait_until() {
	local timeout="$1" what="$2"; shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
	log "ready: ${what}"
}

# ---------------------------------------------------------------- network
# pod_bridges: the pod bridge of every node: the first node's and each added worker's.
pod_bridges() {
	echo "${BRIDGE}"
	local f
	for f in "${WORKERS_DIR}"/*/bridge; do
		[[ -s ${f} ]] && cat "${f}"
	done
	return 0
}

# forward_rules: (re)write chain VELOCITY-FORWARD. Traffic between pod bridges (pods of
# one node, or of two nodes: every bridge is on this host) goes on to the FORWARD rules
# of kube-proxy; anything forwarded between a pod bridge and another interface is
# dropped. iptables-restore --noflush replaces this one chain atomically, so running
# it again (up.sh, add-node.sh, remove-node.sh) never opens a window without rules.
forward_rules() {
	local bridges from to
	mapfile -t bridges < <(pod_bridges)
	{
		echo "*filter"
		echo ":${FORWARD_CHAIN} - [0:0]"
		for from in "${bridges[@]}"; do
			for to in "${bridges[@]}"; do echo "-A ${FORWARD_CHAIN} -i ${from} -o ${to} -j RETURN"; done
		done
		for from in "${bridges[@]}"; do
			echo "-A ${FORWARD_CHAIN} -i ${from} -j DROP"
			echo "-A ${FORWARD_CHAIN} -o ${from} -j DROP"
		done
		echo "COMMIT"
	} | iptables-restore -w 10 --noflush
	iptables -C FORWARD -j "${FORWARD_CHAIN}" 2>/dev/null || iptables -I FORWARD 1 -j "${FORWARD_CHAIN}"
}

# ---------------------------------------------------------------- certificates
# cert NAME CN ORG(optional) SANS(optional, openssl syntax) USAGE(serverAuth,clientAuth)
cert() {
	local name="$1" cn="$2" org="$3" sans="$4" usage="$5"
	[[ -s ${PKI}/${name}.crt ]] && return 0
	local subj="/CN=${cn}"; [[ -n ${org} ]] && subj+="/O=${org}"
	openssl ecparam -name prime256v1 -genkey -noout -out "${PKI}/${name}.key" 2>/dev/null
	openssl req -new -key "${PKI}/${name}.key" -subj "${subj}" -out "${PKI}/${name}.csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=${usage}"
		[[ -n ${sans} ]] && echo "subjectAltName=${sans}"
	} >"${PKI}/${name}.ext"
	openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile "${PKI}/${name}.ext" -out "${PKI}/${name}.crt" 2>/dev/null
	rm -f "${PKI}/${name}.csr" "${PKI}/${name}.ext"
	chmod 600 "${PKI}/${name}.key"
}

kubeconfig() { # NAME USER CERT: write ${KUBECONFIGS}/NAME.kubeconfig (certs embedded)
	local file="${KUBECONFIGS}/$1.kubeconfig"
	[[ -s ${file} ]] && return 0
	local k=("${BIN}/kubectl" --kubeconfig "${file}.tmp")
	"${k[@]}" config set-cluster velocity --server="https://${NODE_IP}:${API_PORT}" \
		--certificate-authority="${PKI}/ca.crt" --embed-certs=true >/dev/null
	"${k[@]}" config set-credentials "$2" --client-certificate="${PKI}/$3.crt" \
		--client-key="${PKI}/$3.key" --embed-certs=true >/dev/null
	"${k[@]}" config set-context velocity --cluster=velocity --user="$2" >/dev/null
	"${k[@]}" config use-context velocity >/dev/null
	chmod 600 "${file}.tmp"; mv "${file}.tmp" "${file}"
}

# ---------------------------------------------------------------- processes
# start NAME COMMAND...: run COMMAND in its own session, log to $LOGS/NAME.log
start() {
	local name="$1"; shift
	if pid_alive "${name}"; then log "running: ${name} (pid $(cat "${PIDS}/${name}.pid"))"; return 0; fi
	log "starting ${name}"
	# Close every inherited descriptor above stderr first: a daemon must not keep the
	# setup lock of hack/e2e.sh (a flock lives as long as any copy of its descriptor).
	(
		for fd in /proc/"${BASHPID}"/fd/*; do
			fd="${fd##*/}"
			((fd > 2)) && eval "exec ${fd}>&-"
		done
		exec setsid "$@"
	) </dev/null >>"${LOGS}/${name}.log" 2>&1 &
	echo $! >"${PIDS}/${name}.pid"
}

# healthy NAME TIMEOUT DESCRIPTION COMMAND...: wait, or fail with the log's tail
healthy() {
	local name="$1" timeout="$2" what="$3"; shift 3
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! pid_alive "${name}"; then
			tail -n 30 "${LOGS}/${name}.log" >&2 || true
			die "${name} exited during start-up; full log: ${LOGS}/${name}.log"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "${LOGS}/${name}.log" >&2 || true
			die "${name}: ${what} not reached after ${timeout}s; full log: ${LOGS}/${name}.log"
		fi
		sleep 0.5
	done
}

curl_ok() { curl -fsS --max-time 3 "$@"; }
admin_curl() { curl_ok --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" "$@"; }

# ---------------------------------------------------------------- node configuration
# Written for the first node by up.sh and for each worker by worker-lib.sh.

# write_containerd_config DIR CNI_CONF_DIR: DIR/config.toml for a containerd whose
# root, state, runc state and socket (DIR/containerd.sock) all live in DIR.
write_containerd_config() {
	local dir="$1" cni_conf="$2"
	mkdir -p "${dir}"/{root,state,runc,opt} "${dir}/hosts.d/_default" "${cni_conf}"
	# Pull blocker, not a mirror: every registry resolves to a closed loopback port,
	# so a missing image fails at once (ErrImagePull) and nothing leaves the machine.
	cat >"${dir}/hosts.d/_default/hosts.toml" <<-EOF
		# Written by hack/cluster: images are imported, never pulled.
		server = "https://127.0.0.1:9"
	EOF
	cat >"${dir}/config.toml" <<-EOF
		# Written by hack/cluster.
		version = 2
		root = "${dir}/root"
		state = "${dir}/state"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
		[grpc]
		  address = "${dir}/containerd.sock"
		[ttrpc]
		  address = "${dir}/containerd.sock.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "${dir}/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "${PAUSE_IMAGE}"
		  # Root here may lack CAP_SYS_RESOURCE (seen: VMs that drop it), so the
		  # negative oom_score_adj CRI gives sandboxes and Guaranteed pods cannot be
		  # set and runc fails; never go below containerd's own score instead.
		  restrict_oom_score_adj = true
		  netns_mounts_under_state_dir = true
		  enable_selinux = false
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		        Root = "${dir}/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "${cni_conf}"
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "${dir}/hosts.d"
	EOF
}

# write_cni_conflist FILE BRIDGE SUBNET IPAM_DIR: a bridge network, no masquerade.
write_cni_conflist() {
	local file="$1" bridge="$2" subnet="$3" ipam="$4"
	mkdir -p "${ipam}"
	cat >"${file}" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "velocity",
		  "plugins": [
		    {
		      "type": "bridge", "bridge": "${bridge}", "isGateway": true, "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local", "dataDir": "${ipam}",
		        "ranges": [[{"subnet": "${subnet}"}]], "routes": [{"dst": "0.0.0.0/0"}]
		      }
		    }
		  ]
		}
	EOF
}

# write_kubelet_config FILE ADDRESS CONTAINERD_SOCK HEALTHZ_PORT SERVING_CERT POD_LOGS CGROUP_ROOT
# SERVING_CERT names ${PKI}/SERVING_CERT.{crt,key}; CGROUP_ROOT keeps each kubelet's
# kubepods hierarchy apart (the first node's is /kubepods).
write_kubelet_config() {
	local file="$1" address="$2" sock="$3" healthz="$4" serving="$5" pod_logs="$6" cgroup_root="$7"
	cat >"${file}" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: ${address}
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: ${PKI}/ca.crt}
		authorization: {mode: Webhook}
		cgroupDriver: cgroupfs
		failCgroupV1: false
		containerRuntimeEndpoint: unix://${sock}
		clusterDNS: [${DNS_SERVICE_IP}]
		clusterDomain: ${CLUSTER_DOMAIN}
		resolvConf: ""
		failSwapOn: false
		tlsCertFile: ${PKI}/${serving}.crt
		tlsPrivateKeyFile: ${PKI}/${serving}.key
		healthzBindAddress: 127.0.0.1
		healthzPort: ${healthz}
		readOnlyPort: 0
		podLogsDir: ${pod_logs}
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
		serializeImagePulls: false
		maxPods: 110
	EOF
	# Only workers set it: the first node keeps kubelet's default (/), as before workers existed.
	[[ ${cgroup_root} == / ]] || echo "cgroupRoot: ${cgroup_root}" >>"${file}"
}
