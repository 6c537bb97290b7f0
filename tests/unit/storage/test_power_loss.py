"""Power cuts during flush, compaction, manifest/CURRENT publication, snapshot export and restore.

The storage engine runs on a real directory through PowerLossSim's FileOps
(power_loss.py): the cut happens before the N-th file operation, for every N
in a deterministic workload that crosses many flushes and compactions, and
the directory is then rewritten to what a real power cut may leave (only
synced file contents, only fsync'ed directory entries; in "tails" mode also
random prefixes of unsynced appends). Each case must recover with every
write acknowledged under `always` present with its value, no table named by
the manifest damaged (check_data_dir reads every block), and no error.

Without an event loop, flush and compaction run inline inside apply(), so
the N-th call is the same one in every run; "acknowledged" is apply() then
wal.sync_now() returning, which is what the group commit waits for before a
reply. VELOCITY_POWER_CUT_STRIDE=1 makes "tails" mode cut at every call (default: every 4th; slower).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from velocity_engine.storage.base import Record
from velocity_engine.storage.check import check_data_dir
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.lsm import LsmOptions, LsmStorage
from velocity_engine.storage.snapshot import restore_snapshot, write_snapshot
from velocity_engine.storage.snapshot_exporter import SnapshotExporter

from tests.unit.storage.power_loss import BypassError, PowerCut, PowerLossSim

OPTS = LsmOptions(appendfsync="always", memtable_bytes=1024, compaction_rate_bytes=1 << 30)
WRITES = 260
KEYS = 40
TAIL_STRIDE = int(os.environ.get("VELOCITY_POWER_CUT_STRIDE", "4"))  # "tails" mode: every Nth call
# Recovery itself is not under test in _verify: skipping its syncs keeps hundreds of cases fast.
NO_SYNC = FileOps(fdatasync=lambda _fd: None, fsync=lambda _fd: None, fsync_dir=lambda _p: None)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: the simulator models durability, and the
    hundreds of renames and creates per test cost ~0.5 ms each on the shared ext4 disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="velocity-power-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Workload:
    """The writes made so far: acknowledged values, and the one in flight at the cut."""

    acked: dict[bytes, Record | None] = field(default_factory=dict)
    inflight: dict[bytes, Record | None] = field(default_factory=dict)
    storage: LsmStorage | None = None
    snapshots: int = 0

    def run(self, data_dir: Path, sim: PowerLossSim) -> None:
        rng = random.Random(7)
        self.storage = st = LsmStorage(data_dir, OPTS, ops=sim.ops)
        exporter = SnapshotExporter(st, data_dir, loop=None)
        for i in range(WRITES):
            key = f"k{rng.randrange(KEYS):03d}".encode()
            rec = None if rng.random() < 0.15 else Record(0, f"v{i}-".encode() + rng.randbytes(rng.randrange(8, 60)))
            self.inflight = {key: rec}
            st.apply([(key, rec)])
            st.wal.sync_now()
            self.acked[key] = rec
            self.inflight = {}
            if i % 90 == 45:  # a snapshot export: freezes the memtable and writes a file
                job = exporter.begin()
                assert job.info is not None, job.error
                self.snapshots += 1
        st.close()
        self.storage = None

    def allowed(self, key: bytes) -> list[Record | None]:
        out = [self.acked.get(key)]
        if key in self.inflight:
            out.append(self.inflight[key])
        return out


def _abandon(st: LsmStorage | None) -> None:
    """Drop a storage object the power cut interrupted, without touching its files."""
    if st is None:
        return
    w = st.wal
    with w._cond:
        w._stopping = True
        w._cond.notify()
    if w._thread is not None:
        w._thread.join()
    with contextlib.suppress(OSError):
        os.close(w._fd)
    st._closed = True
    st._close_readers()


def _verify(data_dir: Path, wl: Workload, label: str) -> None:
    lines: list[str] = []
    assert check_data_dir(data_dir, repair=False, echo=lines.append), f"{label}: " + "\n".join(lines)
    st = LsmStorage(data_dir, LsmOptions(appendfsync="no", memtable_bytes=1024), ops=NO_SYNC)
    try:
        for i in range(KEYS):
            key = f"k{i:03d}".encode()
            got = st.get(key)
            assert got in wl.allowed(key), f"{label}: {key!r} is {got}, expected one of {wl.allowed(key)}"
        # Life goes on after recovery: new writes, a flush, a clean restart.
        st.apply([(b"after", Record(0, b"cut"))])
        st.flush()
    finally:
        st.close()
    st = LsmStorage(data_dir, LsmOptions(appendfsync="no", memtable_bytes=1024), ops=NO_SYNC)
    try:
        assert st.get(b"after") == Record(0, b"cut"), label
        for i in range(KEYS):
            key = f"k{i:03d}".encode()
            assert st.get(key) in wl.allowed(key), label
    finally:
        st.close()


def _cut_run(root: Path, cut_at: int, rng: random.Random | None) -> Workload:
    root.mkdir()
    sim = PowerLossSim(root, cut_at=cut_at)
    wl = Workload()
    with pytest.raises(PowerCut):
        wl.run(root, sim)
    _abandon(wl.storage)
    sim.restore_after_cut(rng)
    return wl


def _count_calls(root: Path) -> tuple[PowerLossSim, Workload]:
    root.mkdir()
    sim = PowerLossSim(root)
    wl = Workload()
    wl.run(root, sim)
    return sim, wl


def test_the_workload_crosses_flushes_compactions_and_snapshots(tmp_path: Path) -> None:
    sim, wl = _count_calls(tmp_path / "db")
    calls = [c for c, _ in sim.log]
    names = [n for _, n in sim.log]
    assert wl.snapshots == 3
    assert sum(1 for c, n in sim.log if c == "replace" and n == "CURRENT") >= 20, "flushes + compactions publish"
    assert any(n.startswith("snap-") for n in names)
    assert calls.count("fsync_dir") >= 20 and calls.count("unlink") >= 20
    _verify(tmp_path / "db", wl, "no cut")


def _cut_points(sim: PowerLossSim, stride: int) -> list[int]:
    """Every call outside the steady-state WAL append path, plus every stride-th call."""
    out = []
    for i, (call, name) in enumerate(sim.log):
        wal_append = name.startswith("wal-") and call in ("write", "sync")
        if not wal_append or i % stride == 0:
            out.append(i)
    return out


@pytest.mark.parametrize("mode", ["synced-only", "tails"])
def test_power_cut_at_every_file_operation_keeps_acknowledged_writes(fast_dir: Path, mode: str) -> None:
    tmp_path = fast_dir
    sim, _ = _count_calls(tmp_path / "count")
    stride = 7 if mode == "synced-only" else TAIL_STRIDE
    points = _cut_points(sim, stride) if mode == "synced-only" else list(range(0, len(sim.log), stride))
    assert len(points) > 250, len(points)
    rng = random.Random(11)
    for cut in points:
        root = tmp_path / f"cut{cut}"
        wl = _cut_run(root, cut, rng if mode == "tails" else None)
        _verify(root, wl, f"cut before call {cut} {sim.log[cut]} ({mode})")
        shutil.rmtree(root)


def test_bypassing_the_file_ops_is_detected(tmp_path: Path) -> None:
    """The simulator can only vouch for files it saw being created."""
    root = tmp_path / "db"
    root.mkdir()
    sim = PowerLossSim(root)
    (root / "stray").write_bytes(b"x")
    with pytest.raises(BypassError):
        sim.restore_after_cut()


def test_a_write_that_was_not_synced_is_lost_by_the_simulated_cut(tmp_path: Path) -> None:
    """The simulator really drops data: a write acknowledged under `no` does not survive."""
    root = tmp_path / "db"
    root.mkdir()
    sim = PowerLossSim(root)
    st = LsmStorage(root, LsmOptions(appendfsync="no"), ops=sim.ops)
    st.apply([(b"k", Record(0, b"v"))])
    _abandon(st)
    sim.restore_after_cut()
    st2 = LsmStorage(root, LsmOptions(appendfsync="no"))
    assert st2.get(b"k") is None
    st2.close()


def _snapshot(tmp_path: Path) -> tuple[Path, dict[bytes, Record]]:
    entries = {f"s{i:05d}".encode(): Record(0, f"value-{i}".encode() * 4) for i in range(3000)}
    path = tmp_path / "snap.vsnap"
    write_snapshot(path, sorted(entries.items()), created_ms=1)
    return path, entries


def test_power_cut_during_restore_then_the_same_restore_completes(fast_dir: Path) -> None:
    tmp_path = fast_dir
    snap, entries = _snapshot(tmp_path)
    count_root = tmp_path / "count"
    count_root.mkdir()
    sim = PowerLossSim(count_root)
    restore_snapshot(snap, count_root, sim.ops)
    total = sim.calls
    assert total >= 10
    for cut in range(total):
        root = tmp_path / f"cut{cut}"
        root.mkdir()
        sim = PowerLossSim(root, cut_at=cut)
        with pytest.raises(PowerCut):
            restore_snapshot(snap, root, sim.ops)
        sim.restore_after_cut()
        restore_snapshot(snap, root)  # the engine restarted with the same --restore-from
        st = LsmStorage(root, LsmOptions(appendfsync="no"))
        try:
            assert len(st) == len(entries), f"cut before call {cut} {sim.log[-1:]}"
            assert dict(st.iter_from(b"")) == entries, f"cut before call {cut}"
        finally:
            st.close()


def test_regression_power_cut_after_first_start_keeps_the_storage_directory(tmp_path: Path) -> None:
    """Found by the cut-at-every-operation test: storage/ was created without an fsync of the
    data directory, so a power cut soon after the first start lost the directory and every
    write acknowledged under `always` in it."""
    root = tmp_path / "db"
    root.mkdir()
    sim = PowerLossSim(root)
    st = LsmStorage(root, LsmOptions(appendfsync="always"), ops=sim.ops)
    st.apply([(b"k", Record(0, b"v"))])
    st.wal.sync_now()  # acknowledged
    _abandon(st)
    sim.restore_after_cut()
    st2 = LsmStorage(root, LsmOptions(appendfsync="no"))
    try:
        assert st2.get(b"k") == Record(0, b"v")
    finally:
        st2.close()
