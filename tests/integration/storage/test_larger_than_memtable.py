"""A data set many times the memtable through a real engine: flushes, compaction, reads, restart."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.support.engine_proc import EngineProcess, wait_until

N = 30_000


def _sample(metrics: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else -1.0


def test_flushes_compactions_reads_and_restart(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "big", extra_args=["--memtable-bytes", "262144"])
    try:
        eng.start()

        async def load() -> None:
            async with eng.pool(pool_size=4) as pool:
                for base in range(0, N, 500):
                    await pool.mset({f"user:{i:06d}": f"profile-{i}-" + "x" * 40 for i in range(base, base + 500)})
                await asyncio.gather(*(pool.delete(f"user:{i:06d}") for i in range(0, N, 10)))

        asyncio.run(load())
        metrics = eng.metrics()
        assert _sample(metrics, "velocity_memtable_flushes_total") >= 10
        wait_until(lambda: _sample(eng.metrics(), "velocity_compactions_total") >= 1, 60, 0.1, "a compaction")

        async def verify() -> None:
            async with eng.pool(pool_size=2) as pool:
                got = await pool.mget([f"user:{i:06d}" for i in range(0, N, 7)])
                for i, v in zip(range(0, N, 7), got, strict=True):
                    assert v == (None if i % 10 == 0 else f"profile-{i}-" + "x" * 40), i
                keys = [k async for k in pool.scan("user:0012", count=50)]
                assert keys == [f"user:{i:06d}" for i in range(1200, 1300) if i % 10]
                assert await pool.get("user:999999") is None

        asyncio.run(verify())
        metrics = eng.metrics()
        assert _sample(metrics, "velocity_bloom_checks_total", '{result="negative"}') > 0
        assert _sample(metrics, "velocity_keys") == N - N // 10
        for name in ("velocity_sstables", "velocity_sstable_bytes"):
            assert re.search(rf'^{name}{{level="\d+"}} [1-9]', metrics, re.M), name
        assert eng.stop() == 0
        eng.start()
        asyncio.run(verify())
        assert _sample(eng.metrics(), "velocity_keys") == N - N // 10
    finally:
        eng.kill()


def test_metrics_contract_names_are_exported(engine: EngineProcess) -> None:
    assert engine.ctl("set", "a", "1").returncode == 0
    metrics = engine.metrics()
    for name in (
        "velocity_wal_appends_total", "velocity_wal_bytes_total", "velocity_wal_fsync_duration_seconds_bucket",
        "velocity_wal_fsync_lag_seconds", "velocity_writes_refused", "velocity_memtable_bytes",
        "velocity_compactions_total", "velocity_compaction_bytes_written_total",
        "velocity_compaction_duration_seconds_bucket", "velocity_bloom_checks_total",
        "velocity_bloom_false_positives_total",
    ):
        assert re.search(rf"^{name}[ {{]", metrics, re.M), name
