# Shared settings of the local test cluster (sourced by up.sh, down.sh, ...).
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
