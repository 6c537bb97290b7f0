"""Jepsen-style: histories of 8 clients against 3 sync-mode engines under faults, checked by porcupine.

One test per scenario (scenarios.py). Each asserts that the history is
linearizable (a lost acknowledged write, a duplicated increment, a stale
read from a returning or deposed primary each make it fail), that enough
operations were checked, and that the cluster recovered (writes acknowledged
after the fault). Regression tests for issue 12: `restart_old_primary`
(stale reads from a restarted old primary), `replicas_paused` (the sync-mode
wedge), and the deposed-primary visits of `pause_primary` and `partition`.

LINEARIZABILITY_SCALE stretches the load (`make test-linearizability`);
LINEARIZABILITY_RESULTS names a file that gets one JSON line per scenario.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.integration.linearizability.checker import check
from tests.integration.linearizability.recorder import Recorder, Router
from tests.integration.linearizability.scenarios import SCENARIOS, Context, partition, start_cluster
from tests.integration.replication.cluster import Cluster
from tests.integration.replication.netns import Veth, netns_available

SCALE = float(os.environ.get("LINEARIZABILITY_SCALE", "1"))
MIN_OPS = int(float(os.environ.get("LINEARIZABILITY_MIN_OPS", "5000")) * SCALE)


def _run(name: str, cluster: Cluster, tmp: Path, checker_bin: Path,
         scenario: Callable[[Context], Awaitable[None]], veth: Veth | None = None) -> None:
    p, r1, r2 = start_cluster(cluster, veth)
    router = Router(p)
    history = tmp / f"{name}.jsonl"
    recorder = Recorder(history, router, clients=8, seed=hash(name) & 0xFFFF)
    ctx = Context(cluster, p, (r1, r2), router, recorder, SCALE)
    t0 = time.monotonic()
    counts = asyncio.run(recorder.run(lambda: scenario(ctx)))
    elapsed = time.monotonic() - t0
    verdict = check(checker_bin, history, timeout_s=300, viz_dir=tmp)
    row = {
        "scenario": name, "result": verdict.result, "ops": verdict.ops, "unknown": verdict.unknown,
        "by_op": verdict.by_op, "refused": counts.refused, "failed_reads": counts.failed_reads,
        "seconds": round(elapsed, 1), "check_s": round(verdict.seconds, 2),
        "first_ack_after_s": {k: round(v, 3) for k, v in counts.first_ack_after.items()}, **ctx.notes,
    }
    print(json.dumps(row))
    out = os.environ.get("LINEARIZABILITY_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    assert verdict.ok, (f"{name}: the history is {verdict.result} (keys {verdict.bad_keys}; "
                        f"see {verdict.visualization or history})")
    assert verdict.ops >= MIN_OPS, f"{name}: only {verdict.ops} operations were recorded"
    for mark in recorder.marks:
        assert mark in counts.first_ack_after, f"{name}: no write was acknowledged after '{mark}'"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_history_is_linearizable(name: str, cluster: Cluster, tmp_path: Path, checker_bin: Path) -> None:
    _run(name, cluster, tmp_path, checker_bin, SCENARIOS[name])


@pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for network namespaces")
def test_history_is_linearizable_across_a_partition(tmp_path: Path, checker_bin: Path) -> None:
    with Veth("vlz", "10.213.91") as veth:
        cluster = Cluster(tmp_path / "c", names=(veth.outer, veth.inner))
        try:
            _run("partition", cluster, tmp_path, checker_bin, partition(veth), veth)
        finally:
            cluster.close()
