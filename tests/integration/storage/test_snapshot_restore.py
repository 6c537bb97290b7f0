"""`velocityctl snapshot FILE` from a server under writes, then `velocity-engine --restore-from FILE`."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support.engine_proc import ENGINE, EngineProcess


def test_snapshot_during_writes_restores_exactly_a_point_in_time(tmp_path: Path) -> None:
    src = EngineProcess(
        tmp_path / "src", extra_args=["--memtable-bytes", "131072"]
    )
    dst = EngineProcess(tmp_path / "dst")
    snap = tmp_path / "backup.vsnap"
    try:
        src.start()

        async def base_data() -> None:
            async with src.pool(pool_size=2) as pool:
                for b in range(0, 6000, 500):
                    await pool.mset({f"base:{i:05d}": i for i in range(b, b + 500)})

        asyncio.run(base_data())

        async def write_while_snapshotting() -> int:
            stop = asyncio.Event()
            n = 0

            async def writer() -> None:
                nonlocal n
                async with src.pool(pool_size=1) as pool:
                    while not stop.is_set():
                        n += 1
                        await pool.mset({f"seq:{n:07d}": n, "last": n})  # one atomic batch per step

            task = asyncio.create_task(writer())
            while n < 50:
                await asyncio.sleep(0.005)
            proc = await asyncio.create_subprocess_exec(
                *src.ctl_args("snapshot", str(snap)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=src.ctl_env(),
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            assert b"wrote" in out
            while n < 100:
                await asyncio.sleep(0.005)
            stop.set()
            await task
            return n

        total = asyncio.run(write_while_snapshotting())
        dst.extra_args = ["--restore-from", str(snap)]
        dst.start()
        assert "restored" in dst.log()

        async def check() -> None:
            async with dst.pool(pool_size=1) as pool:
                last = await pool.get("last")
                assert isinstance(last, int) and 50 <= last < total
                seq = [k async for k in pool.scan("seq:", count=1000)]
                assert seq == [f"seq:{i:07d}" for i in range(1, last + 1)], "exactly the writes before the snapshot"
                base = await pool.mget([f"base:{i:05d}" for i in range(6000)])
                assert base == list(range(6000))

        asyncio.run(check())
        # Writes after a restore are durable, and a restart with the same flag keeps them.
        assert dst.ctl("set", "after-restore", "yes").returncode == 0
        assert dst.stop() == 0
        dst.start()
        assert dst.ctl("get", "after-restore").stdout == b"yes\n"
        metrics = src.metrics()
        assert "velocity_snapshot_last_success_timestamp_seconds " in metrics
        assert "velocity_snapshot_bytes " in metrics and "velocity_snapshot_bytes 0.0" not in metrics
    finally:
        src.kill()
        dst.kill()


def test_restore_refuses_a_damaged_snapshot(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "src") as src:
        assert src.ctl("set", "a", "1").returncode == 0
        snap = tmp_path / "s.vsnap"
        assert src.ctl("snapshot", "-q", str(snap)).returncode == 0
    data = bytearray(snap.read_bytes())
    data[40] ^= 0xFF
    snap.write_bytes(bytes(data))
    r = subprocess.run([ENGINE, "--data-dir", str(tmp_path / "new"), "--restore-from", str(snap), "--port", "0",
                        "--metrics-port", "0"], capture_output=True, timeout=30)
    assert r.returncode == 1 and b"checksum" in r.stderr


def test_snapshot_needs_auth(engine: EngineProcess) -> None:
    import os

    from tests.support.engine_proc import CTL

    env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
    env["VDB_TOKEN"] = "not-the-token"
    r = subprocess.run([CTL, "--endpoint", engine.endpoint, "--ca", str(engine.ca), "snapshot", "x.vsnap"],
                       capture_output=True, timeout=30, env=env)
    assert r.returncode == 2 and b"auth" in r.stderr.lower(), r.stderr
    assert not Path("x.vsnap").exists()
