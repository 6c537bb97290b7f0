"""Serving snapshots to clients (SNAPSHOT_BEGIN / SNAPSHOT_READ, docs/formats/protocol.md).

BEGIN pins a point-in-time view on the loop thread (LsmStorage.pin_view:
the memtable is frozen, the tables pinned; writes continue into a new
memtable) and a worker thread writes the snapshot file into
DATA_DIR/storage/snapshots/. READ serves byte ranges of the finished file;
the file is deleted once read to the end, after IDLE_S without reads, or at
shutdown. Loop thread only, except the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vproto.errors import BusyError, InternalError, InvalidArgumentError

from velocity_engine.storage.base import Record, Storage
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import snapshot_dir
from velocity_engine.storage.lsm import LsmStorage
from velocity_engine.storage.merge import merge_newest_first
from velocity_engine.storage.snapshot import SnapshotInfo, write_snapshot

log = logging.getLogger(__name__)
IDLE_S = 300.0
MAX_JOBS = 2
MAX_READ = 4 * 1024 * 1024


class SnapshotError(Exception):
    """A snapshot request that cannot be served (unknown id, too many at once, failed)."""


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


class SnapshotExporter:
    def __init__(self, storage: Storage, data_dir: Path, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.storage = storage
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
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        if self.dir.exists():  # leftovers of a previous process
            for p in self.dir.iterdir():
                p.unlink(missing_ok=True)

    def begin(self) -> SnapshotJob:
        self._expire_idle()
        if sum(1 for j in self.jobs.values() if j.info is None and not j.error) >= MAX_JOBS:
            raise SnapshotError(f"{MAX_JOBS} snapshots are already being written; try again later")
        ops = st.ops if isinstance(st := self.storage, LsmStorage) else FileOps()
        ops.make_dirs(self.dir)
        job_id = secrets.token_hex(8)
        now = time.monotonic()
        created_ms = time.time_ns() // 1_000_000
        job = SnapshotJob(job_id, self.dir / f"snap-{job_id}.vsnap", now, now, created_ms)
        if isinstance(st, LsmStorage):
            srcs, release = st.pin_view()
        else:  # volatile storage: copy the records now (consistent, O(n) on the loop)
            copied: list[tuple[bytes, Record | None]] = list(st.iter_from(b""))
            srcs, release = [iter(copied)], lambda: None

        def work() -> SnapshotInfo:
            tmp = job.path.with_suffix(".tmp")
            info = write_snapshot(tmp, merge_newest_first(srcs), created_ms, ops)
            # No directory fsync: a served snapshot is temporary and start-up deletes leftovers.
            ops.replace(tmp, job.path)
            return info

        def done(info: SnapshotInfo | None, err: BaseException | None) -> None:
            release()
            if err is not None or info is None:
                job.error = str(err)
                log.error("snapshot %s failed: %s", job_id, err)
                return
            job.info = info
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
            raise SnapshotError(f"no snapshot {job_id!r} (finished, expired after {IDLE_S:g}s idle, or never begun)")
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
            raise BusyError(str(exc), retry_after_ms=1000) from None
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
            if job.info is not None and now - job.touched > IDLE_S:
                self._drop(job)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for job in list(self.jobs.values()):
            self._drop(job)
