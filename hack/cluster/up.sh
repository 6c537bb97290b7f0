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
	# Pods may talk to each other (on any node's bridge), to the node and to Services,
	# never beyond (common.sh: forward_rules).
	forward_rules
}

# ---------------------------------------------------------------- certificates
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
	mkdir -p "${STATE}/cni"/{net.d,networks}
	write_containerd_config "${CONTAINERD_DIR}" "${STATE}/cni/net.d"
	write_cni_conflist "${STATE}/cni/net.d/10-velocity.conflist" "${BRIDGE}" "${POD_CIDR}" "${STATE}/cni/networks"
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
	write_kubelet_config "${STATE}/kubelet-config.yaml" "${NODE_IP}" "${CONTAINERD_SOCK}" 10248 kubelet-serving \
		"${STATE}/pod-logs" /
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
