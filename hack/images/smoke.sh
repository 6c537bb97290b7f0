#!/usr/bin/env bash
# Run the engine image with the native data plane in a real container, without the cluster.
#
# Usage: hack/images/smoke.sh [ENGINE_ARCHIVE]   (root; default $VELOCITY_IMAGE_CACHE/engine.tar)
#
# Starts a private containerd (its own root, state and socket in a temporary directory,
# CRI off: nothing of the local cluster's containerd is touched), imports the archive
# that hack/images/build.sh wrote, and runs the image as the cluster does (user 10001,
# read-only root filesystem, /data a writable volume) with
#   --data-plane native --storage memory
# on the host's network, TLS and the generated token as by default. Then it checks, with
# the host's velocityctl, that the engine answers PING, SET and GET and that INFO reports
# server.data_plane = native. Everything is removed at exit, the container first.
set -euo pipefail
[[ ${EUID} -eq 0 ]] || { echo "error: $0 must run as root (containerd, runc)" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
CACHE="${VELOCITY_IMAGE_CACHE:-${HOME}/.cache/velocity-images}"
ARCHIVE="${1:-${CACHE}/engine.tar}"
IMAGE=docker.io/velocity/engine:dev
NS=velocity-smoke
CTL="${REPO}/.venv/bin/velocityctl"
PY="${REPO}/.venv/bin/python"
START_TIMEOUT_S=60

log() { printf '%s smoke: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }

[[ -s ${ARCHIVE} ]] || die "no archive ${ARCHIVE} (run hack/images/build.sh engine)"
for cmd in containerd ctr runc; do command -v "${cmd}" >/dev/null || die "${cmd} is missing (apt-get install containerd runc)"; done
[[ -x ${CTL} ]] || die "${CTL} is missing (make install)"

DIR="$(mktemp -d /tmp/velocity-smoke.XXXXXX)"
SOCK="${DIR}/containerd.sock"
CONTAINERD_PID=""
CTR=(ctr --address "${SOCK}" -n "${NS}")

cleanup() {
	local rc=$?
	if [[ -n ${CONTAINERD_PID} ]]; then
		"${CTR[@]}" tasks kill --signal SIGKILL engine >/dev/null 2>&1 || true
		"${CTR[@]}" tasks delete --force engine >/dev/null 2>&1 || true
		"${CTR[@]}" containers delete engine >/dev/null 2>&1 || true
		kill "${CONTAINERD_PID}" 2>/dev/null || true
		wait "${CONTAINERD_PID}" 2>/dev/null || true
	fi
	# Snapshots of a deleted container are unmounted by containerd; this catches a crash.
	grep -o " ${DIR}/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
	if ((rc != 0)) && [[ -s ${DIR}/engine.log ]]; then
		echo "--- engine output (last 30 lines)" >&2
		tail -n 30 "${DIR}/engine.log" >&2
	fi
	rm -rf "${DIR}"
	exit "${rc}"
}
trap cleanup EXIT

mkdir -p "${DIR}"/{root,state,opt}
cat >"${DIR}/config.toml" <<EOF
# Written by hack/images/smoke.sh: a throwaway containerd for one container.
version = 2
root = "${DIR}/root"
state = "${DIR}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${SOCK}"
[ttrpc]
  address = "${SOCK}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${DIR}/opt"
EOF
containerd --config "${DIR}/config.toml" >"${DIR}/containerd.log" 2>&1 &
CONTAINERD_PID=$!
# Readiness: the socket answers (containerd has no readiness notification but its API).
deadline=$((SECONDS + 30))
until "${CTR[@]}" version >/dev/null 2>&1; do
	kill -0 "${CONTAINERD_PID}" 2>/dev/null || { tail -n 20 "${DIR}/containerd.log" >&2; die "containerd exited"; }
	((SECONDS < deadline)) || die "containerd did not answer within 30 s (log: ${DIR}/containerd.log)"
	sleep 0.2
done

log "importing ${ARCHIVE}"
"${CTR[@]}" images import --snapshotter overlayfs "${ARCHIVE}" >/dev/null

read -r PORT METRICS_PORT < <("${PY}" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
install -d -m 0750 -o 10001 -g 10001 "${DIR}/data"

log "running ${IMAGE} with --data-plane native on 127.0.0.1:${PORT}"
"${CTR[@]}" run -d --snapshotter overlayfs --net-host --read-only --log-uri "file://${DIR}/engine.log" \
	--mount "type=bind,src=${DIR}/data,dst=/data,options=rbind:rw" \
	--mount "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777" \
	"${IMAGE}" engine \
	/opt/velocity/bin/velocity-engine --data-dir /data --host 127.0.0.1 --port "${PORT}" \
	--metrics-host 127.0.0.1 --metrics-port "${METRICS_PORT}" --data-plane native --storage memory

# Ready when /readyz answers 200; the engine writes its CA and token before it listens.
"${PY}" - "${METRICS_PORT}" "${START_TIMEOUT_S}" "${DIR}/data" <<'EOF' || die "the engine in the container did not become ready"
import sys, time, urllib.request
from pathlib import Path
port, timeout_s, data = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
deadline = time.monotonic() + timeout_s
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            if r.status == 200 and (data / "auth-token").exists():
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"smoke: /readyz on port {port} not 200 after {timeout_s:.0f} s")
    time.sleep(0.2)  # polling interval of a readiness probe, not a synchronisation
EOF

export VDB_ENDPOINT="vdb://127.0.0.1:${PORT}" VDB_CA="${DIR}/data/tls/ca.crt" VDB_TOKEN_FILE="${DIR}/data/auth-token"
"${CTL}" ping >/dev/null
"${CTL}" set smoke:key native-core >/dev/null
got="$("${CTL}" get smoke:key)"
[[ ${got} == native-core ]] || die "GET smoke:key returned '${got}', expected 'native-core'"
plane="$("${CTL}" info --json | "${PY}" -c '
import json, sys
info = json.load(sys.stdin)
server = info.get("server", {})
print(server.get("data_plane", "?"))')" || die "velocityctl info did not print JSON"
[[ ${plane} == native ]] || die "INFO reports data_plane '${plane}', expected 'native'"
log "ok: ${IMAGE} serves PING, SET, GET over TLS + token from the native core (INFO server.data_plane = native)"
