"""Issue 11, finding 4: SNAPSHOT_BEGIN must not be able to fill the disk.

Black-box, against real engine processes on a tmpfs of their own (root, as
in CI and the dev machines; the test fails loudly elsewhere): a BEGIN loop keeps the
snapshot files bounded in number and bytes and leaves the volume usable;
BEGIN is refused (BUSY, a clear message) when it would eat into the free-space
margin; a snapshot that fails leaves no partial file; abandoned snapshots
are deleted on a timer and at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode

from tests.support.engine_proc import EngineProcess, wait_until
from tests.support.raw import RawConnection
from tests.support.tmpfs import mounted_tmpfs

MiB = 1024 * 1024
VALUE = os.urandom(64 * 1024)  # incompressible: the snapshot is as large as the data


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "400m") as mnt:
        yield mnt


def call(eng: EngineProcess, opcode: int, body: bytes = b"") -> tuple[bytes | None, m.ErrorResponse | None]:
    """One request on a fresh admin connection: (reply body, None) or (None, error)."""
    with RawConnection(eng.port, eng.ca) as conn:
        conn.hello(eng.admin_token)
        conn.request(opcode, body)
        op, _, reply = conn.read_frame()
    if op == Opcode.ERROR:
        return None, m.ErrorResponse.decode(reply)
    assert op == opcode | 0x80, f"opcode 0x{op:02x}"
    return reply, None


def begin(eng: EngineProcess) -> tuple[str | None, m.ErrorResponse | None]:
    reply, err = call(eng, Opcode.SNAPSHOT_BEGIN, m.SnapshotBeginRequest().encode())
    return (m.SnapshotBeginResponse.decode(reply).snapshot_id if reply is not None else None), err


def read(
    eng: EngineProcess, snap_id: str, offset: int = 0, max_bytes: int = 64 * 1024
) -> tuple[m.SnapshotReadResponse | None, m.ErrorResponse | None]:
    reply, err = call(eng, Opcode.SNAPSHOT_READ, m.SnapshotReadRequest(snap_id, offset, max_bytes).encode())
    return (m.SnapshotReadResponse.decode(reply) if reply is not None else None), err


def snapshot_files(eng: EngineProcess) -> list[Path]:
    d = eng.data_dir / "storage" / "snapshots"
    return sorted(d.iterdir()) if d.is_dir() else []


def load(eng: EngineProcess, n: int) -> None:
    async def go() -> None:
        async with eng.pool(pool_size=2) as pool:
            for base in range(0, n, 16):
                await pool.mset({f"blob:{i:05d}": VALUE for i in range(base, min(base + 16, n))})

    asyncio.run(go())


def writes_work(eng: EngineProcess, key: str) -> bool:
    async def go() -> bool:
        async with eng.pool(pool_size=1) as pool:
            await pool.set(key, VALUE)
            return bool(await pool.get(key) == VALUE)

    return asyncio.run(go())


def test_begin_loop_keeps_files_bounded_and_disk_usable(disk: Path) -> None:
    """~10 s of BEGINs: at most snapshot_max_files files, bytes bounded, free space kept, writes work."""
    eng = EngineProcess(
        disk, env={
        "VELOCITY_SNAPSHOT_MAX_FILES": "3", "VELOCITY_SNAPSHOT_IDLE_S": "3",
        "VELOCITY_SNAPSHOT_MIN_FREE_BYTES": str(100 * MiB), "VELOCITY_MEMTABLE_BYTES": str(8 * MiB),
    })
    with eng:
        load(eng, 400)  # ~25 MiB of data: an unbounded loop fills the 400 MiB volume in seconds
        ok = busy = 0
        max_files = max_bytes = 0
        min_free = disk_free(disk)
        reasons: set[str] = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            snap_id, err = begin(eng)
            if err is not None:
                assert err.code == ErrorCode.BUSY, err
                assert err.retry_after_ms > 0
                busy += 1
                reasons.add(err.message.split(" ", 3)[-1][:40])
            else:
                assert snap_id
                ok += 1
            files = snapshot_files(eng)
            max_files = max(max_files, len(files))
            max_bytes = max(max_bytes, sum(_size(p) for p in files))
            min_free = min(min_free, disk_free(disk))
        assert ok >= 3, (ok, busy)
        assert busy > 0, "the loop was never refused"
        assert max_files <= 3, f"{max_files} snapshot files at once (snapshot_max_files = 3)"
        assert max_bytes <= 3 * 40 * MiB, f"snapshot files took {max_bytes} bytes"
        assert min_free >= 50 * MiB, f"free space fell to {min_free} bytes"
        assert writes_work(eng, "after-the-loop")
        metrics = eng.metrics()
        assert re.search(rf"^velocity_snapshots_refused_total {busy}\.0$", metrics, re.M), "refusals not counted"
        # Nobody reads them: the timer deletes them all (idle 3 s), no new BEGIN needed.
        wait_until(lambda: not snapshot_files(eng), 20, 0.1, "abandoned snapshots to be deleted")
        assert eng.http_status("/readyz") == 200


def test_begin_refused_when_it_would_eat_the_free_space_margin(disk: Path) -> None:
    """Margin 370 MiB of a 400 MiB volume, ~25 MiB of data: BEGIN is refused, nothing written, writes work."""
    eng = EngineProcess(
        disk, env={"VELOCITY_SNAPSHOT_MIN_FREE_BYTES": str(370 * MiB)})
    with eng:
        load(eng, 400)
        snap_id, err = begin(eng)
        assert snap_id is None and err is not None, "a snapshot that would leave < the margin was started"
        assert err.code == ErrorCode.BUSY
        assert "snapshot_min_free_bytes" in err.message and "disk space" in err.message, err.message
        assert err.retry_after_ms >= 1000
        assert snapshot_files(eng) == []
        assert writes_work(eng, "still-writable")


def test_failed_snapshot_leaves_no_partial_file(disk: Path) -> None:
    """The volume runs out while the file is written: the partial file goes, the id reports the error.

    The space is taken right after BEGIN's reply, while the worker writes
    ~150 MiB; should the worker win the race, the snapshot is read to
    the end (deleted) and the race run again.
    """
    eng = EngineProcess(
        disk,
        env={"VELOCITY_SNAPSHOT_MIN_FREE_BYTES": "0", "VELOCITY_STORAGE": "memory"},
    )
    with eng:
        load(eng, 2400)  # in memory: the snapshot file is the only big thing on the volume
        filler = disk / "filler"
        for _attempt in range(5):
            snap_id, err = begin(eng)
            assert err is None and snap_id, err
            fill(filler)

            def outcome(snap_id: str = snap_id) -> tuple[str, m.ErrorResponse | None] | None:
                reply, rerr = read(eng, snap_id)
                if rerr is not None:
                    return "failed", rerr
                assert reply is not None
                return ("ready", None) if reply.ready else None

            what, rerr = wait_until(outcome, 60, 0.05, "the snapshot to finish or fail")
            if what == "ready":  # the worker won: read it to the end (the server deletes it) and race again
                offset = 0
                while True:
                    reply, _ = read(eng, snap_id, offset, 4 * MiB)
                    assert reply is not None
                    offset += len(reply.data)
                    if offset >= reply.size:
                        break
                filler.unlink()
                continue
            assert rerr is not None
            assert rerr.code == ErrorCode.INVALID_ARGUMENT and "failed" in rerr.message, rerr
            assert snapshot_files(eng) == [], "the failed snapshot's partial file was left behind"
            filler.unlink()
            assert writes_work(eng, "after-failure")
            return
        pytest.fail("the snapshot never ran out of space in 5 tries (the worker always finished first)")


def test_abandoned_snapshots_are_deleted_at_start_up(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e")
    with eng:
        load(eng, 20)
        ids = [begin(eng)[0] for _ in range(2)]
        assert all(ids)
        wait_until(lambda: len([p for p in snapshot_files(eng) if p.suffix == ".vsnap"]) == 2, 20,
                   what="two ready snapshots")
        eng.kill()  # SIGKILL: no shutdown clean-up
        stale = eng.data_dir / "storage" / "snapshots" / "snap-0123456789abcdef.tmp"
        stale.write_bytes(b"partial")  # what a crash mid-write leaves
        assert len(snapshot_files(eng)) == 3
        eng.start()
        assert snapshot_files(eng) == [], "stale snapshot files survived a restart"
        for snap_id in ids:
            assert snap_id is not None
            reply, err = read(eng, snap_id)
            assert reply is None and err is not None and err.code == ErrorCode.INVALID_ARGUMENT


def fill(path: Path) -> None:
    """Take the volume's free space at once (fallocate), then write the rest until ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with contextlib.suppress(OSError):  # the snapshot may have taken some meanwhile
            os.posix_fallocate(fd, 0, max(disk_free(path.parent) - 16 * MiB, MiB))
        chunk = b"\0" * MiB
        for _ in range(1024):  # the volume is 400 MiB
            os.write(fd, chunk)
    except OSError:
        return
    finally:
        os.close(fd)
    raise AssertionError("the volume never filled")


def disk_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0
