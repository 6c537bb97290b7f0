"""Snapshot files: round trip, point-in-time view while writing, damage detection, restore."""

from __future__ import annotations

from pathlib import Path

import pytest
from velocity_engine.storage.base import Record
from velocity_engine.storage.errors import RestoreError
from velocity_engine.storage.lsm import LsmOptions, LsmStorage
from velocity_engine.storage.snapshot import read_snapshot, restore_snapshot, write_snapshot
from velocity_engine.storage.snapshot_exporter import SnapshotExporter

OPTS = LsmOptions(appendfsync="no", memtable_bytes=16 * 1024)


def _fill(st: LsmStorage, n: int, tag: bytes = b"") -> dict[bytes, Record]:
    model = {}
    for i in range(n):
        k = f"k{i:05d}".encode()
        r = Record(0, b"v" * (i % 30) + tag)
        st.apply([(k, r)])
        model[k] = r
    return model


def test_round_trip_skips_tombstones_and_expired(tmp_path: Path) -> None:
    entries: list[tuple[bytes, Record | None]] = [
        (b"a", Record(0, b"1")), (b"b", None), (b"c", Record(1, b"x", 500)), (b"d", Record(3, b"{}", 5000)),
    ]
    info = write_snapshot(tmp_path / "s", entries, created_ms=1000)
    assert info.entries == 2 and info.size == (tmp_path / "s").stat().st_size
    assert list(read_snapshot(tmp_path / "s")) == [(b"a", Record(0, b"1")), (b"d", Record(3, b"{}", 5000))]


def test_every_flipped_byte_and_truncation_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s"
    write_snapshot(path, [(f"k{i}".encode(), Record(0, b"v")) for i in range(50)], created_ms=1)
    good = path.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(RestoreError):
            list(read_snapshot(path))
    for cut in range(0, len(good), 7):
        path.write_bytes(good[:cut])
        with pytest.raises(RestoreError):
            list(read_snapshot(path))


def test_snapshot_is_a_point_in_time_while_writes_continue(tmp_path: Path) -> None:
    st = LsmStorage(tmp_path / "src", OPTS)
    before = _fill(st, 3000)
    exporter = SnapshotExporter(st, tmp_path / "src", loop=None)
    job = exporter.begin()
    assert job.info is not None  # written inline without a loop
    after = _fill(st, 3000, tag=b"-later")  # overwrites every key after the snapshot point
    st.apply([(b"k00001", None)])
    ready, size, data = exporter.read(job.id, 0, 0)
    assert ready and size == len(data)
    snap = tmp_path / "copy.vsnap"
    snap.write_bytes(data)
    assert not job.path.exists(), "read to the end: the server-side file is gone"
    restore_snapshot(snap, tmp_path / "dst")
    dst = LsmStorage(tmp_path / "dst", OPTS)
    assert dict(dst.iter_from(b"")) == before
    assert len(dst) == len(before)
    assert dict(st.iter_from(b"")) != before and st.get(b"k00002") == after[b"k00002"]
    dst.close()
    exporter.close()
    st.close()


def test_restore_refuses_a_non_empty_directory_but_accepts_a_restart(tmp_path: Path) -> None:
    snap = tmp_path / "s"
    write_snapshot(snap, [(b"a", Record(0, b"1"))], created_ms=1)
    restore_snapshot(snap, tmp_path / "d")
    restore_snapshot(snap, tmp_path / "d")  # same snapshot again: a restart with the same flag
    other = tmp_path / "s2"
    write_snapshot(other, [(b"b", Record(0, b"2"))], created_ms=2)
    with pytest.raises(RestoreError, match="empty data directory"):
        restore_snapshot(other, tmp_path / "d")
    st = LsmStorage(tmp_path / "d", OPTS)
    assert st.get(b"a") == Record(0, b"1") and st.get(b"b") is None
    st.close()


def test_view_includes_an_unfrozen_memtable_when_flushes_are_behind(tmp_path: Path) -> None:
    from velocity_engine.storage.merge import merge_newest_first

    st = LsmStorage(tmp_path, OPTS)
    st._flushing = True  # pretend the flush thread is busy: frozen memtables queue up
    model = _fill(st, 4000)
    assert len(st.imm) == 4 and len(st.mem) > 0, "the queue is full and the memtable holds more"
    srcs, release = st.pin_view()
    view = {k: r for k, r in merge_newest_first(srcs) if r is not None}
    release()
    assert view == model
    st._flushing = False
    st.close()
