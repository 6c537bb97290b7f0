"""A full disk: writes are refused with WRITES_REFUSED, reads keep working, nothing acknowledged is lost,
and writes come back by themselves once there is space again.

The data directory lives on a small tmpfs of its own (needs root, as in CI and
the dev machines), which the test grows while the engine runs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto.errors import WritesRefusedError

from tests.support.engine_proc import EngineProcess
from tests.support.tmpfs import mounted_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "3m") as mnt:
        yield mnt


def test_full_disk_refuses_writes_keeps_reads_loses_nothing_and_recovers(small_disk: Path) -> None:
    eng = EngineProcess(small_disk, extra_args=["--appendfsync", "always"])
    acked: dict[str, bytes] = {}
    try:
        eng.start()

        async def fill() -> str:
            async with eng.pool(pool_size=1) as pool:
                for i in range(200):
                    value = bytes([i % 251]) * 100_000
                    try:
                        await pool.set(f"blob:{i}", value)
                    except WritesRefusedError as exc:
                        return str(exc)
                    acked[f"blob:{i}"] = value
                raise AssertionError("3 MB disk never filled up")

        message = asyncio.run(fill())
        assert "No space left" in message or "refused" in message
        assert acked, "some writes fit before the disk filled"

        async def after() -> None:
            async with eng.pool(pool_size=1) as pool:
                with pytest.raises(WritesRefusedError):
                    await pool.set("small", 1)
                first = next(iter(acked))
                assert await pool.get(first) == acked[first]  # reads keep working
                info = await pool.info()
                assert info["persistence"]["writes_refused"] is True
                assert info["persistence"]["write_error"]

        asyncio.run(after())
        assert "velocity_writes_refused 1.0" in eng.metrics()
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)

        async def space_returns() -> None:
            # No restart: the next write after space returns goes through (probe at most once a second).
            async with eng.pool(pool_size=1) as pool:
                deadline = asyncio.get_running_loop().time() + 10
                while True:
                    try:
                        assert await pool.set("small", 1)
                        break
                    except WritesRefusedError:
                        assert asyncio.get_running_loop().time() < deadline, "writes never came back"
                        await asyncio.sleep(0.2)
                acked["small"] = b"1"

        asyncio.run(space_returns())
        assert "velocity_writes_refused 0.0" in eng.metrics()
        eng.kill()
        eng.start()

        async def verify() -> None:
            async with eng.pool(pool_size=1) as pool:
                blobs = [k for k in acked if k.startswith("blob:")]
                got = await pool.mget(blobs)
                assert [g == acked[k] for g, k in zip(got, blobs, strict=True)] == [True] * len(blobs)
                assert await pool.get("small") == 1
                assert await pool.set("after", 2)

        asyncio.run(verify())
        info = json.loads(eng.ctl("info", "--json").stdout)
        assert info["persistence"]["writes_refused"] is False
    finally:
        eng.kill()


def test_info_has_the_pinned_storage_fields(engine: EngineProcess) -> None:
    assert engine.ctl("set", "k", "v").returncode == 0
    info = json.loads(engine.ctl("info", "--json").stdout)
    assert info["keys"] == 1
    for field in ("memtable_bytes", "sstables", "wal_bytes", "compactions"):
        assert field in info["storage"], field
    assert info["persistence"]["appendfsync"] == "everysec"
    assert "last_fsync_ms" in info["persistence"]
