#!/usr/bin/env bash
# Bring up the single-node local test cluster; print its admin kubeconfig path LAST.
#
# Components run as host processes: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd (+ runc, cgroupfs), kubelet, kube-proxy (iptables),
# CoreDNS (cluster zone only; listens on the node address behind the kube-dns
# Service) and velocity-local-provisioner (default StorageClass "standard").
# Pods use the bridge CNI plugin from Debian's containernetworking-plugins.
#
# Idempotent: components already running are left alone, missing ones are started,
# existing certificates and etcd data are reused, so running it again after a
# reboot or a crash restarts the cluster. `hack/cluster/down.sh` undoes everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

# ---------------------------------------------------------------- prerequisites
install_prereqs() {
	local missing=() cmd
	for cmd in "${!PREREQS[@]}"; do
		command -v "${cmd}" >/dev/null 2>&1 || [[ -x ${cmd} ]] || missing+=("${PREREQS[${cmd}]}")
	done
	((${#missing[@]})) || return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing Debian packages: ${missing[*]}"
	# No package may start its service: containerd runs with our own configuration.
	local policy=/usr/sbin/policy-rc.d created=0
	if [[ ! -e ${policy} ]]; then printf '#!/bin/sh\nexit 101\n' >"${policy}"; chmod +x "${policy}"; created=1; fi
	if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"${STATE}/apt.log" 2>&1 ||
		{ apt-get update -qq >>"${STATE}/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"${STATE}/apt.log" 2>&1; }; }; then
		((created)) && rm -f "${policy}"
		die "apt-get install ${missing[*]} failed; see ${STATE}/apt.log"
	fi
	((created)) && rm -f "${policy}"
	# Debian's containerd package ships a systemd unit; on machines with systemd make
	# sure the system-wide instance is not what we talk to (we use our own socket).
	return 0
}

check_kernel() {
	[[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpu ]] ||
		die "cgroup v1 controllers (memory, cpu) are not mounted under /sys/fs/cgroup; this harness runs kubelet with cgroupDriver=cgroupfs on cgroup v1"
	[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
		die "br_netfilter is not available (/proc/sys/net/bridge missing): load it with 'modprobe br_netfilter'"
	grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem (needed by containerd's snapshotter)"
}

# ---------------------------------------------------------------- network
save_sysctl() { # name: remember the original value once, then set 1
	local name="$1" file="${STATE}/sysctl.orig"
	grep -q "^${name}=" "${file}" 2>/dev/null || echo "${name}=$(sysctl -n "${name}")" >>"${file}"
	sysctl -qw "${name}=1"
}

setup_network() {
	save_sysctl net.ipv4.ip_forward
	save_sysctl net.bridge.bridge-nf-call-iptables
	ip addr replace "${NODE_IP}/32" dev "${NODE_IF}"
	# Pods may talk to each other, to the node and to Services, never beyond: drop
	# anything forwarded between the pod bridge and another interface.
	iptables -N "${FORWARD_CHAIN}" 2>/dev/null || iptables -F "${FORWARD_CHAIN}"
	iptables -A "${FORWARD_CHAIN}" -i "${BRIDGE}" ! -o "${BRIDGE}" -j DROP
	iptables -A "${FORWARD_CHAIN}" ! -i "${BRIDGE}" -o "${BRIDGE}" -j DROP
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

setup_pki() {
	mkdir -p "${PKI}" "${KUBECONFIGS}"
	if [[ ! -s ${PKI}/ca.crt ]]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "${PKI}/ca.key" 2>/dev/null
		openssl req -x509 -new -key "${PKI}/ca.key" -subj "/CN=velocity-cluster-ca" -days 3650 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
			-out "${PKI}/ca.crt"
		chmod 600 "${PKI}/ca.key"
	fi
	[[ -s ${PKI}/sa.key ]] || {
		openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
		openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
	}
	local api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
	api_sans+=",DNS:kubernetes.default.svc.${CLUSTER_DOMAIN},DNS:localhost,IP:${NODE_IP},IP:${API_SERVICE_IP},IP:127.0.0.1"
	cert apiserver kube-apiserver "" "${api_sans}" serverAuth
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
	cert admin velocity-admin system:masters "" clientAuth
	cert controller-manager system:kube-controller-manager "" "" clientAuth
	cert scheduler system:kube-scheduler "" "" clientAuth
	cert kube-proxy system:kube-proxy "" "" clientAuth
	cert kubelet "system:node:${NODE_NAME}" system:nodes "" clientAuth
	cert kubelet-serving "${NODE_NAME}" "" "DNS:${NODE_NAME},IP:${NODE_IP}" serverAuth
	# CoreDNS and the provisioner are test infrastructure: cluster-admin keeps them simple.
	cert infra velocity-infra system:masters "" clientAuth
	kubeconfig admin velocity-admin admin
	kubeconfig controller-manager system:kube-controller-manager controller-manager
	kubeconfig scheduler system:kube-scheduler scheduler
	kubeconfig kube-proxy system:kube-proxy kube-proxy
	kubeconfig kubelet "system:node:${NODE_NAME}" kubelet
	kubeconfig infra velocity-infra infra
}

# ---------------------------------------------------------------- processes
# start NAME COMMAND...: run COMMAND in its own session, log to $LOGS/NAME.log
start() {
	local name="$1"; shift
	if pid_alive "${name}"; then log "running: ${name} (pid $(cat "${PIDS}/${name}.pid"))"; return 0; fi
	log "starting ${name}"
	setsid "$@" </dev/null >>"${LOGS}/${name}.log" 2>&1 &
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

start_etcd() {
	start etcd "${BIN}/etcd" --name=velocity --data-dir="${STATE}/etcd" \
		--listen-client-urls="http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
		--listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
		--initial-cluster="velocity=http://127.0.0.1:${ETCD_PEER_PORT}" --listen-metrics-urls="" \
		--quota-backend-bytes=4294967296
	healthy etcd 60 "/health" curl_ok "http://127.0.0.1:${ETCD_PORT}/health"
}

start_apiserver() {
	start kube-apiserver "${BIN}/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
		--bind-address="${NODE_IP}" --advertise-address="${NODE_IP}" --secure-port="${API_PORT}" \
		--cert-dir="${STATE}/apiserver" \
		--tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
		--client-ca-file="${PKI}/ca.crt" \
		--kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" \
		--kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="${PKI}/ca.crt" --kubelet-preferred-address-types=InternalIP \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--service-cluster-ip-range="${SERVICE_CIDR}" \
		--service-account-key-file="${PKI}/sa.pub" --service-account-signing-key-file="${PKI}/sa.key" \
		--service-account-issuer="https://kubernetes.default.svc.${CLUSTER_DOMAIN}" \
		--allow-privileged=true --profiling=false
	healthy kube-apiserver 90 "/readyz" admin_curl "https://${NODE_IP}:${API_PORT}/readyz"
}

start_control_plane() {
	start kube-controller-manager "${BIN}/kube-controller-manager" \
		--kubeconfig="${KUBECONFIGS}/controller-manager.kubeconfig" \
		--authentication-kubeconfig="${KUBECONFIGS}/controller-manager.kubeconfig" \
		--authorization-kubeconfig="${KUBECONFIGS}/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --cert-dir="${STATE}/controller-manager" --leader-elect=false \
		--use-service-account-credentials=true --service-account-private-key-file="${PKI}/sa.key" \
		--root-ca-file="${PKI}/ca.crt" --cluster-signing-cert-file="${PKI}/ca.crt" \
		--cluster-signing-key-file="${PKI}/ca.key" --service-cluster-ip-range="${SERVICE_CIDR}" \
		--cluster-cidr="${CLUSTER_CIDR}" --allocate-node-cidrs=false --profiling=false
	start kube-scheduler "${BIN}/kube-scheduler" \
		--kubeconfig="${KUBECONFIGS}/scheduler.kubeconfig" \
		--authentication-kubeconfig="${KUBECONFIGS}/scheduler.kubeconfig" \
		--authorization-kubeconfig="${KUBECONFIGS}/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false --profiling=false
	healthy kube-controller-manager 60 "/healthz" curl_ok -k https://127.0.0.1:10257/healthz
	healthy kube-scheduler 60 "/healthz" curl_ok -k https://127.0.0.1:10259/healthz
}

start_containerd() {
	mkdir -p "${CONTAINERD_DIR}"/{root,state,runc,opt} "${CONTAINERD_DIR}/hosts.d/_default" "${STATE}/cni"/{net.d,networks}
	# Pull blocker, not a mirror: every registry resolves to a closed loopback port,
	# so a missing image fails at once (ErrImagePull) and nothing leaves the machine.
	cat >"${CONTAINERD_DIR}/hosts.d/_default/hosts.toml" <<-EOF
		# Written by hack/cluster/up.sh: images are imported, never pulled.
		server = "https://127.0.0.1:9"
	EOF
	cat >"${CONTAINERD_DIR}/config.toml" <<-EOF
		# Written by hack/cluster/up.sh.
		version = 2
		root = "${CONTAINERD_DIR}/root"
		state = "${CONTAINERD_DIR}/state"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
		[grpc]
		  address = "${CONTAINERD_SOCK}"
		[ttrpc]
		  address = "${CONTAINERD_SOCK}.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "${CONTAINERD_DIR}/opt"
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
		        Root = "${CONTAINERD_DIR}/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "${STATE}/cni/net.d"
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "${CONTAINERD_DIR}/hosts.d"
	EOF
	cat >"${STATE}/cni/net.d/10-velocity.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "velocity",
		  "plugins": [
		    {
		      "type": "bridge", "bridge": "${BRIDGE}", "isGateway": true, "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local", "dataDir": "${STATE}/cni/networks",
		        "ranges": [[{"subnet": "${POD_CIDR}"}]], "routes": [{"dst": "0.0.0.0/0"}]
		      }
		    }
		  ]
		}
	EOF
	start containerd containerd --config "${CONTAINERD_DIR}/config.toml"
	healthy containerd 30 "its socket" ctr --address "${CONTAINERD_SOCK}" version
}

import_pause_image() {
	has_line "$(ctr --address "${CONTAINERD_SOCK}" -n k8s.io images ls -q)" "${PAUSE_IMAGE}" && return 0
	local archive
	archive="$("${HACK}/images/build-pause.sh" "${BIN}/velocity-pause" | tail -n 1)"
	ctr --address "${CONTAINERD_SOCK}" -n k8s.io images import --no-unpack=false "${archive}" >/dev/null
	has_line "$(ctr --address "${CONTAINERD_SOCK}" -n k8s.io images ls -q)" "${PAUSE_IMAGE}" ||
		die "importing the pause image did not produce ${PAUSE_IMAGE}"
	log "imported ${PAUSE_IMAGE}"
}

start_node() {
	mkdir -p "${STATE}/kubelet" "${STATE}/pod-logs"
	cat >"${STATE}/kubelet-config.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: ${NODE_IP}
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: ${PKI}/ca.crt}
		authorization: {mode: Webhook}
		cgroupDriver: cgroupfs
		failCgroupV1: false
		containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
		clusterDNS: [${DNS_SERVICE_IP}]
		clusterDomain: ${CLUSTER_DOMAIN}
		resolvConf: ""
		failSwapOn: false
		tlsCertFile: ${PKI}/kubelet-serving.crt
		tlsPrivateKeyFile: ${PKI}/kubelet-serving.key
		healthzBindAddress: 127.0.0.1
		healthzPort: 10248
		readOnlyPort: 0
		podLogsDir: ${STATE}/pod-logs
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
		serializeImagePulls: false
		maxPods: 110
	EOF
	start kubelet "${BIN}/kubelet" --config="${STATE}/kubelet-config.yaml" \
		--kubeconfig="${KUBECONFIGS}/kubelet.kubeconfig" --root-dir="${STATE}/kubelet" \
		--cert-dir="${STATE}/kubelet/pki" --hostname-override="${NODE_NAME}" --node-ip="${NODE_IP}" \
		--v=1
	cat >"${STATE}/kube-proxy-config.yaml" <<-EOF
		apiVersion: kubeproxy.config.k8s.io/v1alpha1
		kind: KubeProxyConfiguration
		clientConnection: {kubeconfig: ${KUBECONFIGS}/kube-proxy.kubeconfig}
		mode: iptables
		hostnameOverride: ${NODE_NAME}
		clusterCIDR: ${CLUSTER_CIDR}
		healthzBindAddress: 127.0.0.1:10256
		metricsBindAddress: 127.0.0.1:10249
		nodePortAddresses: ["${NODE_IP}/32"]
		conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
		iptables: {minSyncPeriod: 0s, syncPeriod: 10s}
	EOF
	start kube-proxy "${BIN}/kube-proxy" --config="${STATE}/kube-proxy-config.yaml"
	healthy kubelet 60 "/healthz" curl_ok http://127.0.0.1:10248/healthz
	healthy kube-proxy 60 "/healthz" curl_ok http://127.0.0.1:10256/healthz
}

start_dns_and_storage() {
	cat >"${STATE}/Corefile" <<-EOF
		# Serves only the cluster zone and reverse lookups; other names get REFUSED.
		${CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {
		    bind ${NODE_IP}
		    errors
		    health 127.0.0.1:${COREDNS_HEALTH_PORT}
		    ready 127.0.0.1:${COREDNS_READY_PORT}
		    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
		        kubeconfig ${KUBECONFIGS}/infra.kubeconfig velocity
		        pods insecure
		        ttl 5
		    }
		    cache 5
		    loadbalance
		}
	EOF
	start coredns "${BIN}/coredns" -conf "${STATE}/Corefile"
	mkdir -p "${STATE}/volumes"
	start velocity-local-provisioner "${BIN}/velocity-local-provisioner" \
		--kubeconfig="${KUBECONFIGS}/infra.kubeconfig" --root="${STATE}/volumes" \
		--provisioner-name="${PROVISIONER_NAME}"
	kubectl_ apply -f - >/dev/null <<-EOF
		apiVersion: storage.k8s.io/v1
		kind: StorageClass
		metadata:
		  name: standard
		  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
		provisioner: ${PROVISIONER_NAME}
		reclaimPolicy: Delete
		volumeBindingMode: WaitForFirstConsumer
		---
		apiVersion: v1
		kind: Service
		metadata:
		  name: kube-dns
		  namespace: kube-system
		  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
		spec:
		  clusterIP: ${DNS_SERVICE_IP}
		  ports:
		  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
		  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
		---
		# CoreDNS runs on the node itself: the Service has no selector, its endpoints
		# are the node address.
		apiVersion: discovery.k8s.io/v1
		kind: EndpointSlice
		metadata:
		  name: kube-dns-host
		  namespace: kube-system
		  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: velocity-cluster}
		addressType: IPv4
		endpoints:
		- addresses: ["${NODE_IP}"]
		  conditions: {ready: true}
		  nodeName: ${NODE_NAME}
		ports:
		- {name: dns, port: 53, protocol: UDP}
		- {name: dns-tcp, port: 53, protocol: TCP}
	EOF
	healthy coredns 60 "/ready" curl_ok "http://127.0.0.1:${COREDNS_READY_PORT}/ready"
}

node_ready() {
	[[ "$(kubectl_ get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

main() {
	mkdir -p "${STATE}" "${LOGS}" "${PIDS}"
	chmod 700 "${STATE}"
	local t0=${SECONDS}
	install_prereqs
	check_kernel
	BIN="$("${HACK}/k8s-build.sh" | tail -n 1)"
	log "binaries: ${BIN}"
	setup_network
	setup_pki
	start_etcd
	start_apiserver
	start_control_plane
	start_containerd
	import_pause_image
	start_node
	start_dns_and_storage
	# kube-proxy and kubelet re-assert their own FORWARD rules; keep ours first.
	iptables -D FORWARD -j "${FORWARD_CHAIN}" 2>/dev/null || true
	iptables -I FORWARD 1 -j "${FORWARD_CHAIN}"
	if ! wait_until 120 "node ${NODE_NAME} Ready" node_ready; then
		kubectl_ describe node "${NODE_NAME}" >&2 || true
		die "node ${NODE_NAME} did not become Ready; logs in ${LOGS}"
	fi
	log "cluster up in $((SECONDS - t0))s; state in ${STATE}"
	echo "${ADMIN_KUBECONFIG}"
}

main "$@"
