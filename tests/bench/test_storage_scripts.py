"""Smoke runs of the storage benchmarks (bench/restart.py, bench/table_reads.py) in a tiny mode.

They start real engines (and Redis for table_reads) as the scripts do for the
record, so the scripts cannot rot; the figures they print are not checked,
only that each case ran and its results make sense.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run(script: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, str(BENCH / script), *args, "--json-out", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the script kills its engines on SIGTERM (they run in their own sessions)
            proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    result: dict[str, Any] = json.loads(stdout)
    return result


@pytest.mark.parametrize("cases", ["empty,wal", "kill,tables"])
def test_restart_script_measures_each_case(tmp_path: Path, cases: str) -> None:
    doc = _run("restart.py", "--gib", "0.002", "--rounds", "1", "--cases", cases, "--workdir", str(tmp_path))
    results = {r["case"]: r for r in doc["results"]}
    assert list(results) == cases.split(",")
    for case, r in results.items():
        assert len(r["ready_s"]) == 1 and 0 < r["ready_s"][0] < 60, r
        assert 0 < r["cpu_at_ready_s"][0] < 60, r
        rec = r["recovery"][0]
        if case == "wal":
            assert r["before_restart"]["sstables"] == 0 and rec["batches"] > 0, r
        if case == "tables":
            assert r["before_restart"]["memtable_bytes"] == 0 and r["before_restart"]["sstables"] >= 1, r
            assert rec["batches"] == 0, r
        if case != "empty":
            assert r["keys"] > 1000 and r["data_dir_bytes"] > r["keys"] * r["value_bytes"], r


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed (make bench-deps)")
def test_table_reads_script_separates_bloom_hits_and_misses(tmp_path: Path) -> None:
    doc = _run("table_reads.py", "--keys", "20000", "--samples", "300", "--memtable-bytes", str(256 * 1024),
               "--workdir", str(tmp_path))
    assert doc["layout"]["memtable_bytes"] == 0 and doc["layout"]["sstables"] >= 2, doc["layout"]
    passes = {(p["server"], p["name"]): p for p in doc["passes"]}
    assert set(passes) == {("velocity", "present, cold"), ("velocity", "present, warm"), ("velocity", "absent"),
                           ("redis", "present"), ("redis", "absent")}
    absent = passes[("velocity", "absent")]
    assert absent["found"] == 0
    # Every absent lookup asked at least one table's bloom filter, and nearly all said no.
    assert absent["metrics"]["velocity_bloom_checks_total:negative"] >= 300
    assert absent["metrics"]["velocity_bloom_false_positives_total"] < 300 * doc["layout"]["sstables"] * 0.05
    cold = passes[("velocity", "present, cold")]
    assert cold["found"] == 300 and cold["metrics"]["block_cache_misses"] > 0
    assert passes[("velocity", "present, warm")]["metrics"]["block_cache_misses"] == 0, "the warm pass is warm"
    for p in passes.values():
        assert 0 < p["p50_us"] <= p["p99_us"] <= p["max_us"], p
