#!/usr/bin/env bash
# Interleaved A/B of the engine at a git revision against the working tree, same vbench, same machine.
#
#   bench/ab_revisions.sh REV [ROUNDS]      e.g. bench/ab_revisions.sh e14c671 4
#
# Each round starts the old engine (REV's engine/ and proto/python/ sources, run with this venv),
# then the new one, each --insecure with memory storage and pinned to CPU 0, and drives it with
# vbench on CPU 1 (50 connections, P=1 and P=16, SET and GET, 100k requests). Interleaving the two
# spreads the machine's drift over both; report medians. Needs `make install vbench`.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/ab_revisions.sh REV [ROUNDS]}
rounds=${2:-3}
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$rev" engine proto/python | tar -x -C "$old"

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {  # $1 label, $2 PYTHONPATH ("" for the working tree)
  local data port mport pid
  data=$(mktemp -d); port=$(free_port); mport=$(free_port)
  PYTHONPATH=$2 taskset -c 0 .venv/bin/python -c 'from velocity_engine.cli import main; main()' \
    --data-dir "$data" --port "$port" --metrics-port "$mport" --insecure --storage memory >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null && break; sleep 0.05; done
  for p in 1 16; do
    taskset -c 1 bench/.build/vbench -p "$port" -t set,get -c 50 -P "$p" -n 100000 -json - 2>/dev/null |
      .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print('$1 P=$p', ' '.join(f\"{t['test']}={t['ops_per_sec']:.0f}\" for t in d['tests'] or []))"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$data"
}

for _ in $(seq "$rounds"); do
  run "$rev" "$old/engine:$old/proto/python"
  run "working-tree" ""
done
