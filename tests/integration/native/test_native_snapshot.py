"""SNAPSHOT_BEGIN/READ on the native data plane (issue 13, stage 2c).

A snapshot taken from a native engine under write load restores, with `--restore-from`,
into a native and into a Python engine with the same contents (one point in time); a
snapshot served by the Python engine restores natively; and for the same data both planes
write the same file but for its instant (docs/formats/snapshot.md is one format). The
export state machine (limits, idle expiry, failure clean-up) is tested in
engine/core/src/snapshot.rs; the lifecycle suites (security/test_snapshot_lifecycle.py,
storage/test_snapshot_restore.py) run natively under VELOCITY_TEST_DATA_PLANE=native.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from velocity_engine.replication.position_record import POSITION_KEY
from velocity_engine.storage.snapshot import CHUNK_TARGET, read_snapshot

from tests.support.engine_proc import EngineProcess

try:  # a missing core is a failure, not a skip: `make test-native` builds it first
    import velocity_engine._core  # noqa: F401
except ImportError as exc:
    raise RuntimeError(f"the native data plane is not built ({exc}): run make native") from exc


def plane(name: str, storage: str = "lsm") -> list[str]:
    return ["--data-plane", name, "--storage", storage]


async def _dump(eng: EngineProcess) -> dict[str, Any]:
    """Every key and its value."""
    async with eng.pool(pool_size=1) as pool:
        keys = [k async for k in pool.scan("", count=1000)]
        values = await pool.mget(keys) if keys else []
    return dict(zip(keys, values, strict=True))


def dump(eng: EngineProcess) -> dict[str, Any]:
    return asyncio.run(_dump(eng))


def snapshot_under_writes(src: EngineProcess, snap: Path) -> int:
    """`velocityctl snapshot` while a writer commits one MSET batch after another; the writes made."""

    async def go() -> int:
        async with src.pool(pool_size=2) as pool:
            for b in range(0, 4000, 500):
                await pool.mset({f"base:{i:05d}": i for i in range(b, b + 500)})
        stop = asyncio.Event()
        started = asyncio.Event()
        n = 0

        async def writer() -> None:
            nonlocal n
            async with src.pool(pool_size=1) as pool:
                while not stop.is_set():
                    n += 1
                    await pool.mset({f"seq:{n:07d}": n, "last": n})  # one atomic batch per step
                    if n == 50:
                        started.set()

        task = asyncio.create_task(writer())
        await started.wait()
        proc = await asyncio.create_subprocess_exec(
            *src.ctl_args("snapshot", str(snap)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=src.ctl_env(),
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert b"wrote" in out
        stop.set()
        await task
        return n

    return asyncio.run(go())


@pytest.mark.parametrize("storage", ["lsm", "memory"])
def test_native_snapshot_under_writes_restores_on_both_planes(tmp_path: Path, storage: str) -> None:
    snap = tmp_path / "backup.vsnap"
    with EngineProcess(tmp_path / "src", extra_args=[*plane("native", storage), "--memtable-bytes", "131072"]) as src:
        total = snapshot_under_writes(src, snap)
        metrics = src.metrics()
        assert re.search(r"^velocity_snapshots_total 1\.0$", metrics, re.M), "the native snapshot was not counted"
        assert "velocity_snapshot_bytes 0.0" not in metrics
        assert re.search(r"^velocity_snapshot_files 0\.0$", metrics, re.M), "read to the end: no file held"
        assert list((src.data_dir / "storage" / "snapshots").iterdir()) == []
    contents = []
    for name in ("native", "python"):
        dst = EngineProcess(tmp_path / f"dst-{name}", extra_args=[*plane(name), "--restore-from", str(snap)])
        with dst:
            assert "restored" in dst.log()
            contents.append(dump(dst))
    native, python = contents
    assert native == python, "the two planes restored different contents"
    last = native["last"]
    assert isinstance(last, int) and 50 <= last <= total
    seq = sorted(k for k in native if k.startswith("seq:"))
    assert seq == [f"seq:{i:07d}" for i in range(1, last + 1)], "exactly the writes before the snapshot"
    assert [native[f"base:{i:05d}"] for i in range(4000)] == list(range(4000))


def test_python_snapshot_restores_natively(tmp_path: Path) -> None:
    snap = tmp_path / "py.vsnap"
    with EngineProcess(tmp_path / "src", extra_args=plane("python")) as src:
        assert src.ctl("mset", "a", "1", "b", "two").returncode == 0
        assert src.ctl("snapshot", "-q", str(snap)).returncode == 0
        want = dump(src)
    with EngineProcess(tmp_path / "dst", extra_args=[*plane("native"), "--restore-from", str(snap)]) as dst:
        assert dump(dst) == want


def test_both_planes_write_the_same_file_for_the_same_data(tmp_path: Path) -> None:
    """The same entries, encoded the same way: the files agree byte for byte but for the
    header's created_ms (bytes 16-24), the Python engine's hidden replication position
    record (it sorts last, in the last chunk) and what follows from those (the counts, CRCs)."""
    files = []
    for name in ("native", "python"):
        snap = tmp_path / f"{name}.vsnap"
        with EngineProcess(tmp_path / name, extra_args=plane(name, "memory")) as eng:

            async def load(eng: EngineProcess = eng) -> None:
                async with eng.pool(pool_size=1) as pool:
                    for b in range(0, 3000, 500):
                        await pool.mset({f"k:{i:05d}": f"value {i}" * (i % 7) or i for i in range(b, b + 500)})

            asyncio.run(load())
            assert eng.ctl("snapshot", "-q", str(snap)).returncode == 0
        files.append(snap)
    native, python = (list(read_snapshot(p)) for p in files)
    assert native == [e for e in python if e[0] != POSITION_KEY]
    assert len(native) == 3000
    nb, pb = (p.read_bytes() for p in files)
    assert len(nb) > 2 * CHUNK_TARGET, "the comparison below needs more than one chunk"
    assert nb[:16] == pb[:16] and nb[24:CHUNK_TARGET] == pb[24:CHUNK_TARGET]
    assert nb[-8:] == pb[-8:] == b"VSNAPEND"
