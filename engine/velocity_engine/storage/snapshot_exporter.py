"""Serving snapshots to clients (SNAPSHOT_BEGIN / SNAPSHOT_READ, docs/formats/protocol.md).

BEGIN pins a point-in-time view on the loop thread (LsmStorage.pin_view:
the memtable is frozen, the tables pinned; writes continue into a new
memtable) and a worker thread writes the snapshot file into
DATA_DIR/storage/snapshots/. READ serves byte ranges of the finished file;
the file is deleted once read to the end, after `idle_s` without reads, or at
shutdown. Loop thread only, except the worker.

The disk is bounded (docs/security.md, "Snapshots"; SnapshotLimits):
- at most `max_files` snapshots exist at once, counting those being written,
  ready and idle, and being read; a failed one's partial file is deleted at
  once (its id answers READ with the error until it expires);
- BEGIN estimates the new file (the data size) and is refused (BUSY) when the
  files would pass `max_bytes` or the volume would keep less than
  `min_free_bytes` free; a file being written is abandoned (and deleted) when
  it passes `max_bytes` or free space falls below half the margin;
- a timer deletes snapshots (and failed ids) untouched for `idle_s`, and
  start-up deletes whatever a previous process left in the directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vproto.errors import BusyError, InternalError, InvalidArgumentError

from velocity_engine.storage.base import Record, Storage
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import snapshot_dir
from velocity_engine.storage.lsm import LsmStorage
from velocity_engine.storage.merge import merge_newest_first
from velocity_engine.storage.snapshot import SnapshotInfo, write_snapshot

log = logging.getLogger(__name__)
IDLE_S = 120.0
MAX_JOBS = 2  # written at once (each holds a pinned view and a worker's time)
MAX_FAILED = 16  # failed ids remembered (no files) until they expire
MAX_READ = 4 * 1024 * 1024
RETRY_BUSY_MS = 1000
RETRY_NO_SPACE_MS = 10_000


class SnapshotError(Exception):
    """A snapshot request that cannot be served (unknown id, too many at once, failed)."""

    retry_after_ms = RETRY_BUSY_MS


class SnapshotNoSpace(SnapshotError):
    """BEGIN would leave less free space than the margin (or pass the bytes bound)."""

    retry_after_ms = RETRY_NO_SPACE_MS


@dataclass(frozen=True)
class SnapshotLimits:
    max_files: int = 4
    max_bytes: int = 0  # 0: no bound beyond max_files
    min_free_bytes: int = 256 * 1024 * 1024
    idle_s: float = IDLE_S


@dataclass(frozen=True)
class SnapshotFigures:
    """What /metrics shows of the exporter (`velocity_snapshot*`); the native core
    reports the same figures in `Core.stats()["snapshots"]`."""

    last_success_ts: float = 0.0
    last_bytes: int = 0
    last_seconds: float = 0.0
    completed: int = 0
    failed: int = 0
    refused: int = 0
    expired: int = 0
    files: int = 0
    disk_bytes: int = 0


@dataclass
class SnapshotJob:
    id: str
    path: Path
    started: float
    touched: float
    created_ms: int = 0
    info: SnapshotInfo | None = None
    error: str = ""
    fd: int | None = None
    estimate: int = 0  # bytes BEGIN expected the file to take
    written: int = field(default=0)  # bytes written so far (the worker updates it)
    held: int = 0  # bytes of the other snapshots when this one began (its share of max_bytes is the rest)

    @property
    def has_file(self) -> bool:
        """Being written, or ready: a file (or its .tmp) on disk."""
        return not self.error

    @property
    def disk_bytes(self) -> int:
        if self.error:
            return 0
        return self.info.size if self.info is not None else max(self.estimate, self.written)


class SnapshotExporter:
    def __init__(
        self,
        storage: Storage,
        data_dir: Path,
        loop: asyncio.AbstractEventLoop | None = None,
        limits: SnapshotLimits | None = None,
    ) -> None:
        self.storage = storage
        self.limits = limits or SnapshotLimits()
        self.data_dir = data_dir
        self.dir = snapshot_dir(data_dir / "storage")
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None  # no loop (tools, unit tests): snapshots are written inline
        self.loop = loop
        self.jobs: dict[str, SnapshotJob] = {}
        self.last_success_ts = 0.0
        self.last_bytes = 0
        self.last_seconds = 0.0
        self.completed = 0
        self.failed = 0
        self.refused = 0
        self.expired = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self.removed_at_start = self._remove_leftovers()
        if loop is not None:
            self._schedule_expiry()

    def _remove_leftovers(self) -> int:
        """Delete whatever a previous process left (ready, idle, partial): no id refers to it any more."""
        n = 0
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if p.is_file() or p.is_symlink():
                    p.unlink(missing_ok=True)
                    n += 1
        if n:
            log.info("removed %d snapshot file(s) left by a previous process", n)
        return n

    def _schedule_expiry(self) -> None:
        if self._closed or self.loop is None or self.loop.is_closed():
            return
        period = min(max(self.limits.idle_s / 4, 0.05), 5.0)
        self._timer = self.loop.call_later(period, self._expiry_tick)

    def _expiry_tick(self) -> None:
        try:
            self._expire_idle()
        except Exception:  # never stop the timer over one bad file
            log.exception("snapshot expiry failed")
        self._schedule_expiry()

    # -- accounting ------------------------------------------------------------------

    def figures(self) -> SnapshotFigures:
        return SnapshotFigures(
            self.last_success_ts, self.last_bytes, self.last_seconds, self.completed, self.failed, self.refused,
            self.expired, self.files(), self.disk_bytes(),
        )

    def files(self) -> int:
        """Snapshots holding a file now (writing, ready, being read)."""
        return sum(1 for j in self.jobs.values() if j.has_file)

    def disk_bytes(self) -> int:
        """Bytes the snapshot files take or are expected to take."""
        return sum(j.disk_bytes for j in self.jobs.values())

    def estimate(self) -> int:
        """An upper-bound guess of the next snapshot's size, without walking the data."""
        st = self.storage.stats()
        return int(st.get("data_bytes", 0)) + 32 * len(self.storage) + 64 * 1024

    def _free_bytes(self, ops: FileOps) -> int:
        return ops.free_bytes(self.dir if self.dir.is_dir() else self.data_dir)

    def _admit(self, ops: FileOps) -> tuple[int, int]:
        """(estimate, bytes held by the others), or SnapshotError: the limits BEGIN checks."""
        lim = self.limits
        writing = sum(1 for j in self.jobs.values() if j.info is None and not j.error)
        if writing >= MAX_JOBS:
            raise SnapshotError(f"{MAX_JOBS} snapshots are already being written; try again later")
        files = self.files()
        if files >= lim.max_files:
            raise SnapshotError(
                f"{files} snapshots are held (snapshot_max_files = {lim.max_files}); one is freed when read to the "
                f"end or after {lim.idle_s:g}s without reads"
            )
        est = self.estimate()
        held = self.disk_bytes()
        if lim.max_bytes and held + est > lim.max_bytes:
            raise SnapshotNoSpace(
                f"snapshot files would take about {held + est} bytes, over snapshot_max_bytes = {lim.max_bytes}"
            )
        # What the files being written may still add, plus this one.
        pending = sum(max(j.estimate - j.written, 0) for j in self.jobs.values() if j.info is None and not j.error)
        free = self._free_bytes(ops)
        if free - pending - est < lim.min_free_bytes:
            raise SnapshotNoSpace(
                f"not enough disk space for a snapshot: {free} bytes free, about {est + pending} needed, and "
                f"snapshot_min_free_bytes = {lim.min_free_bytes} must stay free"
            )
        return est, held

    def _guarded(self, ops: FileOps, job: SnapshotJob) -> FileOps:
        """ops whose writes abandon the file (ENOSPC) past max_bytes or below half the free-space margin."""
        lim = self.limits
        base_write = ops.write
        floor = lim.min_free_bytes // 2

        def write(fd: int, data: bytes | memoryview) -> int:
            if lim.max_bytes and job.held + job.written + len(data) > lim.max_bytes:
                raise OSError(errno.ENOSPC, f"snapshot passed snapshot_max_bytes = {lim.max_bytes}")
            if floor and ops.free_bytes(self.dir) - len(data) < floor:
                raise OSError(errno.ENOSPC, f"free space fell below {floor} bytes (half snapshot_min_free_bytes)")
            n = base_write(fd, data)
            job.written += n
            return n

        return dataclasses.replace(ops, write=write)

    # -- requests ------------------------------------------------------------------

    def begin(self) -> SnapshotJob:
        self._expire_idle()
        ops = st.ops if isinstance(st := self.storage, LsmStorage) else FileOps()
        try:
            est, held = self._admit(ops)
        except SnapshotError as exc:
            self.refused += 1
            log.info("snapshot refused: %s", exc)
            raise
        ops.make_dirs(self.dir)
        job_id = secrets.token_hex(8)
        now = time.monotonic()
        created_ms = time.time_ns() // 1_000_000
        job = SnapshotJob(job_id, self.dir / f"snap-{job_id}.vsnap", now, now, created_ms, estimate=est, held=held)
        wops = self._guarded(ops, job)
        if isinstance(st, LsmStorage):
            srcs, release = st.pin_view()
        else:  # volatile storage: copy the records now (consistent, O(n) on the loop)
            copied: list[tuple[bytes, Record | None]] = list(st.iter_from(b""))
            srcs, release = [iter(copied)], lambda: None

        def work() -> SnapshotInfo:
            tmp = job.path.with_suffix(".tmp")
            try:
                info = write_snapshot(tmp, merge_newest_first(srcs), created_ms, wops)
                # No directory fsync: a served snapshot is temporary and start-up deletes leftovers.
                ops.replace(tmp, job.path)
            except BaseException:
                ops.unlink(tmp)  # a failed snapshot leaves no partial file
                raise
            return info

        def done(info: SnapshotInfo | None, err: BaseException | None) -> None:
            release()
            job.touched = time.monotonic()  # idle from now: finished (or failed) and not yet read
            if err is not None or info is None:
                job.error = (err.strerror if isinstance(err, OSError) and err.strerror else str(err)) or "failed"
                self.failed += 1
                log.error("snapshot %s failed: %s", job_id, job.error)
                if self._closed:
                    self.jobs.pop(job.id, None)
                self._trim_failed()
                return
            job.info = info
            if self._closed:  # finished after shutdown began: nobody will read it
                self._drop(job)
                return
            self.completed += 1
            self.last_success_ts = time.time()
            self.last_bytes = info.size
            self.last_seconds = time.monotonic() - job.started
            log.info("snapshot %s: %d keys, %d bytes in %.2fs", job_id, info.entries, info.size, self.last_seconds)

        self.jobs[job_id] = job
        loop = self.loop
        if loop is None:
            try:
                done(work(), None)
            except Exception as exc:
                done(None, exc)
        else:
            fut = self._pool.submit(work)

            def finished(f: object) -> None:
                exc = fut.exception()
                args = (None, exc) if exc is not None else (fut.result(), None)
                if not loop.is_closed():
                    loop.call_soon_threadsafe(done, *args)

            fut.add_done_callback(finished)
        return job

    def read(self, job_id: str, offset: int, max_bytes: int) -> tuple[bool, int, bytes]:
        """(ready, total size, data at offset). Not ready: the file is still being written."""
        job = self.jobs.get(job_id)
        if job is None:
            raise SnapshotError(
                f"no snapshot {job_id!r} (finished, expired after {self.limits.idle_s:g}s idle, or never begun)"
            )
        job.touched = time.monotonic()
        if job.error:
            self._drop(job)
            raise SnapshotError(f"snapshot {job_id} failed: {job.error}")
        if job.info is None:
            return False, 0, b""
        size = job.info.size
        if job.fd is None:
            job.fd = os.open(job.path, os.O_RDONLY)
        n = max(0, min(max_bytes or MAX_READ, MAX_READ, size - offset))
        data = os.pread(job.fd, n, offset) if n else b""
        if offset + len(data) >= size:
            self._drop(job)  # read to the end: done
        return True, size, data

    # The protocol layer's entry points: SnapshotError becomes a typed wire error.

    def begin_or_raise(self) -> SnapshotJob:
        try:
            return self.begin()
        except SnapshotError as exc:
            raise BusyError(str(exc), retry_after_ms=exc.retry_after_ms) from None
        except OSError as exc:
            raise InternalError(f"cannot start a snapshot: {exc.strerror or exc}") from None

    def read_or_raise(self, job_id: str, offset: int, max_bytes: int) -> tuple[bool, int, bytes]:
        try:
            return self.read(job_id, offset, max_bytes)
        except SnapshotError as exc:
            raise InvalidArgumentError(str(exc)) from None

    def _drop(self, job: SnapshotJob) -> None:
        self.jobs.pop(job.id, None)
        if job.fd is not None:
            os.close(job.fd)
            job.fd = None
        job.path.unlink(missing_ok=True)

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            finished = job.info is not None or job.error
            if finished and now - job.touched > self.limits.idle_s:
                if job.info is not None:
                    self.expired += 1
                    log.info("snapshot %s deleted after %.0fs without reads", job.id, now - job.touched)
                self._drop(job)

    def _trim_failed(self) -> None:
        failed = [j for j in self.jobs.values() if j.error]
        for job in sorted(failed, key=lambda j: j.touched)[: max(0, len(failed) - MAX_FAILED)]:
            self._drop(job)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._pool.shutdown(wait=True)
        for job in list(self.jobs.values()):
            self._drop(job)
