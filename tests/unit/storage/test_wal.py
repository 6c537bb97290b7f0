"""WAL format, reader classification (torn tail vs corruption) and writer failure handling."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest
from velocity_engine.storage.base import Record
from velocity_engine.storage.entry_codec import decode_entry, encode_batch
from velocity_engine.storage.errors import CorruptionError, WalWriteError
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import wal_name
from velocity_engine.storage.lsm import LsmOptions, LsmStorage
from velocity_engine.storage.wal_format import FILE_HEADER_SIZE, RECORD_HEADER_SIZE
from velocity_engine.storage.wal_reader import replay, scan_segment
from velocity_engine.storage.wal_writer import WalWriter


def _write_segment(d: Path, batches: list[list[tuple[bytes, Record | None]]], segment: int = 1) -> list[int]:
    """Write batches with a real writer; returns the end offset of each record."""
    w = WalWriter(d, segment, "no")
    ends = []
    for b in batches:
        w.append(encode_batch(b))
        ends.append(w.segment_bytes)
    w.close()
    return ends


def _batches(n: int) -> list[list[tuple[bytes, Record | None]]]:
    return [[(f"k{i}".encode(), Record(0, b"v" * i, 1000 * i)), (f"d{i}".encode(), None)] for i in range(n)]


def test_entry_round_trip() -> None:
    rec = Record(3, b'{"a":1}', 1_700_000_000_123)
    buf = encode_batch([(b"key", rec), (b"gone", None)])
    key, got, pos = decode_entry(buf, 0)
    assert (key, got) == (b"key", rec)
    assert decode_entry(buf, pos)[:2] == (b"gone", None)


def test_clean_segment_replays_every_batch(tmp_path: Path) -> None:
    batches = _batches(20)
    _write_segment(tmp_path, batches)
    scan = scan_segment(tmp_path / wal_name(1), 1, last=True)
    assert scan.problem is None
    assert scan.batches == batches


def test_truncation_at_every_offset_of_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    batches = _batches(5)
    ends = _write_segment(tmp_path, batches)
    path = tmp_path / wal_name(1)
    full = path.read_bytes()
    start = ends[-2]
    for cut in range(start, len(full)):
        path.write_bytes(full[:cut])
        scan = scan_segment(path, 1, last=True)
        if cut == start:
            assert scan.problem is None
        else:
            assert scan.torn, f"cut at {cut}: {scan.problem}"
            assert scan.valid_end == start
        assert scan.batches == batches[:4]


def test_truncated_file_header_is_torn(tmp_path: Path) -> None:
    _write_segment(tmp_path, [])
    path = tmp_path / wal_name(1)
    for cut in range(FILE_HEADER_SIZE):
        path.write_bytes(path.read_bytes()[:cut])
        scan = scan_segment(path, 1, last=True)
        assert scan.torn and scan.valid_end == 0
        _write_segment(tmp_path, [])


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    _write_segment(tmp_path, _batches(3))
    path = tmp_path / wal_name(1)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 4096)
    scan = scan_segment(path, 1, last=True)
    assert scan.torn and len(scan.batches) == 3


def test_flipped_byte_in_the_middle_is_corruption(tmp_path: Path) -> None:
    batches = _batches(6)
    ends = _write_segment(tmp_path, batches)
    path = tmp_path / wal_name(1)
    full = path.read_bytes()
    # Every byte of the third record, header and payload.
    for off in range(ends[1], ends[2]):
        bad = bytearray(full)
        bad[off] ^= 0x41
        path.write_bytes(bytes(bad))
        scan = scan_segment(path, 1, last=True)
        assert scan.problem is not None and not scan.torn, f"flip at {off}"
        assert scan.problem[0] == ends[1]
        with pytest.raises(CorruptionError) as exc_info:
            list(replay(tmp_path, [1]))
        assert wal_name(1) in str(exc_info.value) and str(ends[1]) in str(exc_info.value)


def test_damage_in_an_older_segment_is_corruption_even_at_its_end(tmp_path: Path) -> None:
    _write_segment(tmp_path, _batches(3), segment=1)
    _write_segment(tmp_path, _batches(2), segment=2)
    old = tmp_path / wal_name(1)
    old.write_bytes(old.read_bytes()[:-3])
    with pytest.raises(CorruptionError):
        list(replay(tmp_path, [1, 2]))


def test_bad_magic_refuses(tmp_path: Path) -> None:
    _write_segment(tmp_path, _batches(1))
    path = tmp_path / wal_name(1)
    path.write_bytes(b"XXXX" + path.read_bytes()[4:])
    with pytest.raises(CorruptionError, match="bad magic"):
        list(replay(tmp_path, [1]))


def test_storage_recovers_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    st = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    st.apply([(b"a", Record(0, b"1"))])
    st.apply([(b"b", Record(0, b"2")), (b"a", None)])
    seg = st.wal.segment
    st.close()
    path = tmp_path / "storage" / wal_name(seg)
    path.write_bytes(path.read_bytes()[:-1])
    st2 = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    assert st2.get(b"a") == Record(0, b"1")  # the second batch was torn off, atomically
    assert st2.get(b"b") is None
    assert st2.recovery.torn_bytes > 0
    assert len(st2) == 1
    st2.close()
    st3 = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    assert st3.recovery.torn_bytes == 0  # the cut was made durable
    st3.close()


def test_failed_write_refuses_all_later_writes(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky_write(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.EIO, "Input/output error")
        return os.write(fd, data)

    st = LsmStorage(tmp_path, LsmOptions(appendfsync="no"), ops=FileOps(write=flaky_write))
    st.apply([(b"a", Record(0, b"1"))])
    with pytest.raises(WalWriteError, match="Input/output"):
        st.apply([(b"b", Record(0, b"2"))])
    assert st.get(b"b") is None, "a write that failed to log must not become visible"
    with pytest.raises(WalWriteError, match="refused"):
        st.apply([(b"c", Record(0, b"3"))])
    assert st.writes_refused
    assert st.get(b"a") == Record(0, b"1"), "reads keep working"
    st.close()


def test_group_commit_one_sync_per_pass_and_failed_sync_fails_waiters(tmp_path: Path) -> None:
    syncs: list[int] = []
    fail = {"on": False}

    def fdatasync(fd: int) -> None:
        if fail["on"]:
            raise OSError(errno.EIO, "Input/output error")
        syncs.append(fd)
        os.fdatasync(fd)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        st = LsmStorage(tmp_path, LsmOptions(appendfsync="always"), loop, FileOps(fdatasync=fdatasync))
        assert st.sync_waiter() is None
        futs = []
        for i in range(100):
            st.apply([(f"k{i}".encode(), Record(0, b"x"))])
            futs.append(st.sync_waiter())
        assert all(f is futs[0] for f in futs), "one future for the whole pass"
        before = len(syncs)
        await asyncio.wait_for(futs[0], 5)
        assert len(syncs) - before == 1, "one fdatasync covered all 100 writes"
        assert st.sync_waiter() is None
        fail["on"] = True
        st.apply([(b"z", Record(0, b"x"))])
        w = st.sync_waiter()
        assert w is not None
        with pytest.raises(WalWriteError, match="fdatasync"):
            await asyncio.wait_for(w, 5)
        with pytest.raises(WalWriteError):
            st.apply([(b"y", Record(0, b"x"))])
        st.close()

    asyncio.run(go())


def test_everysec_syncs_in_the_background(tmp_path: Path) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        st = LsmStorage(tmp_path, LsmOptions(appendfsync="everysec"), loop)
        st.apply([(b"a", Record(0, b"1"))])
        assert st.sync_waiter() is None
        assert st.wal.synced < st.wal.written
        deadline = loop.time() + 5
        while st.wal.synced < st.wal.written:
            assert loop.time() < deadline, "everysec never synced"
            await asyncio.sleep(0.05)
        assert st.wal.fsync_lag() == 0.0
        st.close()

    asyncio.run(go())


def test_record_header_size_is_documented() -> None:
    assert RECORD_HEADER_SIZE == 13 and FILE_HEADER_SIZE == 16


def test_power_loss_keeps_every_write_whose_sync_completed(tmp_path: Path) -> None:
    """LevelDB's fault-injection idea: after a 'power cut', a file holds only what was synced."""
    synced_size: dict[int, int] = {}

    def fdatasync(fd: int) -> None:
        os.fdatasync(fd)
        synced_size[fd] = os.fstat(fd).st_size

    acked: list[bytes] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        st = LsmStorage(tmp_path, LsmOptions(appendfsync="always"), loop, FileOps(fdatasync=fdatasync))
        for rnd in range(20):
            keys = [f"r{rnd}:{i}".encode() for i in range(rnd % 7 + 1)]
            for k in keys:
                st.apply([(k, Record(0, k))])
            w = st.sync_waiter()
            assert w is not None
            await w
            acked.extend(keys)
        # Unsynced writes at the 'power cut':
        st.apply([(b"unsynced", Record(0, b"x"))])
        fd = st.wal._fd
        seg = st.wal.segment
        # Simulate the cut: drop the thread, keep only synced bytes.
        st.wal._stopping = True
        with st.wal._cond:
            st.wal._cond.notify()
        assert st.wal._thread is not None
        st.wal._thread.join()
        size = synced_size[fd]
        os.close(fd)
        os.truncate(tmp_path / "storage" / wal_name(seg), size)

    asyncio.run(go())
    st2 = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    missing = [k for k in acked if st2.get(k) != Record(0, k)]
    assert not missing
    assert st2.get(b"unsynced") is None
    st2.close()


def test_full_disk_refuses_writes_until_space_returns_then_resumes_cleanly(tmp_path: Path) -> None:
    free = {"bytes": 0}
    state = {"full": False}

    def write(fd: int, data: bytes | memoryview) -> int:
        if state["full"]:
            half = len(data) // 2
            if half and len(data) > 40:
                return os.write(fd, data[:half])  # a short write, then ENOSPC on the rest
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    ops = FileOps(write=write, free_bytes=lambda _p: free["bytes"])
    st = LsmStorage(tmp_path, LsmOptions(appendfsync="no"), ops=ops)
    st.apply([(b"a", Record(0, b"1"))])
    state["full"] = True
    with pytest.raises(WalWriteError, match="No space left"):
        st.apply([(b"big", Record(0, b"x" * 200))])
    assert st.writes_refused and st.get(b"big") is None
    state["full"] = False
    with pytest.raises(WalWriteError, match="refused"):
        st.apply([(b"b", Record(0, b"2"))])  # still no free space reported
    free["bytes"] = 1 << 30
    st.wal._last_probe = 0.0  # skip the once-a-second probe wait
    st.apply([(b"b", Record(0, b"2"))])
    assert not st.writes_refused
    st.close()
    st2 = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    assert st2.recovery.torn_bytes == 0, "the partial record was cut off before appending resumed"
    assert st2.get(b"a") == Record(0, b"1") and st2.get(b"b") == Record(0, b"2") and st2.get(b"big") is None
    st2.close()
