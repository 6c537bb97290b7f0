#!/usr/bin/env bash
# Flame graphs of the native data plane under vbench load (issue 13: "the flame graph of
# the remaining cost"). For each case: a fresh engine pinned to CPU 0, vbench on CPU 1
# (50 connections, 64-byte values, 100,000 random keys; a SET pass fills the keyspace
# first), `perf record -g` of the engine for 8 s of the measured test, then the folded
# stacks (bench/results/native-NAME.folded) and an SVG (bench/results/native-NAME.svg).
#
#   bash bench/native_flame.sh                    # every case below
#   bash bench/native_flame.sh lsm-everysec-set-p16
#
# Needs perf (linux-perf) and root or perf_event_paranoid <= 1; inferno (the folding and
# SVG tools) is built once with cargo into ~/.cache/velocity-tools. Not part of make test.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${REPO}/bench/results"
TOOLS="${VELOCITY_TOOLS:-${HOME}/.cache/velocity-tools}"
VBENCH="${REPO}/bench/.build/vbench"
ENGINE="${REPO}/.venv/bin/velocity-engine"
PORT=7301

# name: storage fsync test pipeline
declare -A CASES=(
	[memory-set-p16]="memory everysec set 16"
	[memory-get-p16]="memory everysec get 16"
	[lsm-everysec-set-p16]="lsm everysec set 16"
	[lsm-everysec-get-p16]="lsm everysec get 16"
	[lsm-always-set-p1]="lsm always set 1"
	[lsm-everysec-set-p1]="lsm everysec set 1"
	[lsm-everysec-get-p1]="lsm everysec get 1"
)

die() { echo "native_flame: $*" >&2; exit 1; }
command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
[[ -x ${ENGINE} ]] || die "no ${ENGINE}: run make install"
[[ -x ${VBENCH} ]] || (cd "${REPO}/bench/vbench" && go build -o "${VBENCH}" .) || die "cannot build vbench"
if [[ ! -x ${TOOLS}/bin/inferno-flamegraph ]]; then
	echo "building inferno 0.12 into ${TOOLS} (once)"
	cargo install --quiet --locked inferno --version '^0.12' --root "${TOOLS}"
fi
mkdir -p "${OUT}"

run_case() {
	local name=$1 storage fsync test p dir epid ppid
	read -r storage fsync test p <<<"${CASES[$name]:?unknown case $name}"
	dir="$(mktemp -d)"
	taskset -c 0 "${ENGINE}" --data-plane native --insecure --storage "${storage}" --appendfsync "${fsync}" \
		--data-dir "${dir}" --port "${PORT}" --metrics-port 0 >"${dir}/engine.log" 2>&1 &
	epid=$!
	trap 'kill ${epid} 2>/dev/null || true; rm -rf "${dir}"' RETURN
	for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null && break; sleep 0.05; done
	taskset -c 1 "${VBENCH}" -p "${PORT}" -c 50 -P 16 -n 300000 -r 100000 -d 64 -t set -q >/dev/null
	perf record -F 2999 -g -p "${epid}" -o "${dir}/perf.data" -- sleep 8 >/dev/null 2>&1 &
	ppid=$!
	taskset -c 1 "${VBENCH}" -p "${PORT}" -c 50 -P "${p}" -n 50000000 -r 100000 -d 64 -t "${test}" -duration 8s -q
	wait "${ppid}"
	perf script -i "${dir}/perf.data" 2>/dev/null | "${TOOLS}/bin/inferno-collapse-perf" >"${OUT}/native-${name}.folded"
	"${TOOLS}/bin/inferno-flamegraph" --title "velocity native data plane: ${name}" \
		<"${OUT}/native-${name}.folded" >"${OUT}/native-${name}.svg"
	echo "${name}: bench/results/native-${name}.svg"
}

if (($# == 0)); then set -- "${!CASES[@]}"; fi
for name in "$@"; do run_case "${name}"; done
