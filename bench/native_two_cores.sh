#!/usr/bin/env bash
# The native memory path with the server on one core (CPU 0, one worker; vbench on CPU 1) and on
# both (two workers, vbench unpinned on the same two CPUs): 50 connections, 64-byte values,
# 100,000 random keys, a SET pass first. Server and vbench CPU from /proc/PID/stat.
#   bash bench/native_two_cores.sh     (after make install; bench/.build/vbench from make bench)
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; cd /tmp; V=$REPO/bench/.build/vbench; E=$REPO/.venv/bin/velocity-engine
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run() { # label server_cpus client_cpus test P
  rm -rf /tmp/tc-data; taskset -c $2 $E --data-plane native --insecure --storage memory --data-dir /tmp/tc-data --port 7401 --metrics-port 7402 >/tmp/tc-eng.log 2>&1 &
  local e=$!; for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/7401) 2>/dev/null && break; sleep 0.1; done
  taskset -c $3 $V -p 7401 -c 50 -P $5 -n 200000 -r 100000 -d 64 -t set -q >/dev/null
  local s0=$(cpu $e); local t0=$(date +%s.%N)
  taskset -c $3 $V -p 7401 -c 50 -P $5 -n 2000000 -r 100000 -d 64 -t $4 -duration 10s -q > /tmp/tc-out.txt 2>&1 &
  local v=$!; local c0=0; sleep 0.2; local vc0=$(cpu $v); wait_vc=0
  while kill -0 $v 2>/dev/null; do vc=$(cpu $v 2>/dev/null || echo $vc); sleep 0.2; done
  local t1=$(date +%s.%N); local s1=$(cpu $e)
  threads=$(ls /proc/$e/task | wc -l)
  echo "$1 $4 P=$5: $(grep -i requests /tmp/tc-out.txt | head -1) | server CPU $(echo "($s1-$s0)/100" | bc -l | cut -c1-5) s over $(echo "$t1-$t0" | bc | cut -c1-5) s wall; vbench CPU ~$(echo "($vc-$vc0)/100" | bc -l | cut -c1-5) s; engine threads $threads; workers $(grep -o 'native data plane, [0-9]* worker' /tmp/tc-eng.log)"
  kill $e; wait $e 2>/dev/null
}
for t in get set; do for P in 1 16; do
  run one-core 0 1 $t $P
  run two-cores 0-1 0-1 $t $P
done; done
