"""Appending to the write-ahead log, and making it durable per the appendfsync policy.

Threads: `append`, `rotate`, `waiter` and `close` are called on the event
loop thread only. A dedicated sync thread does nothing but fdatasync the
current segment and report back through `loop.call_soon_threadsafe`; it never
writes, so write-then-sync order holds: a sync that starts after `append`
returned covers that append (we read `written` before syncing).

Policies (Redis's names):
- always: group commit. `waiter()` hands out one Future per event-loop pass;
  at the end of the pass one sync request covers every write made in it, and
  the Futures complete when the sync does. Replies wait for them.
- everysec: the sync thread syncs once a second if anything is unsynced.
- no: the OS decides (segments are still synced when rotated and on close).

`set_policy` switches at runtime (config reload), on the loop thread. The
policy is read where it matters (`waiter()` at each write, the sync loop at
each wake-up), so a write applied after a switch to `always` gets a waiter
whose sync covers it and everything before it; waiters handed out before a
switch away from `always` still complete (a requested sync always runs).

A failed sync, or a write failing for any reason but a full disk, is final:
`failed` and `fatal` are set, every waiter gets WalWriteError, and `append`
refuses from then on (fsyncgate: a failed fdatasync may have dropped the
dirty pages, so retrying would lie). A write failing with ENOSPC/EDQUOT
refuses writes until enough space is free again; then the partial record is
truncated away and appending resumes (nothing before it was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from velocity_engine.storage.errors import WalWriteError
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import wal_name
from velocity_engine.storage.wal_format import TYPE_BATCH, encode_record, file_header

log = logging.getLogger(__name__)

Policy = Literal["always", "everysec", "no"]
POLICIES: tuple[Policy, ...] = ("always", "everysec", "no")

RECOVER_PROBE_S = 1.0  # after a full disk, look for free space at most this often
RECOVER_FREE_BYTES = 4 * 1024 * 1024  # and accept writes again once this much is free

# Seconds; an fdatasync here is ~220 us, a slow disk tens of ms.
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


@dataclass
class WalStats:
    appends: int = 0
    bytes: int = 0
    fsyncs: int = 0
    fsync_seconds_sum: float = 0.0
    fsync_buckets: list[int] = field(default_factory=lambda: [0] * (len(FSYNC_BUCKETS) + 1))
    last_fsync_s: float = 0.0

    def observe_fsync(self, seconds: float) -> None:
        self.fsyncs += 1
        self.fsync_seconds_sum += seconds
        self.last_fsync_s = seconds
        i = 0
        while i < len(FSYNC_BUCKETS) and seconds > FSYNC_BUCKETS[i]:
            i += 1
        self.fsync_buckets[i] += 1


class WalWriter:
    """Owns the newest WAL segment's file descriptor and the sync thread."""

    def __init__(
        self,
        directory: Path,
        segment: int,
        policy: Policy,
        loop: asyncio.AbstractEventLoop | None = None,
        ops: FileOps | None = None,
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.ops = ops or FileOps()
        self.loop = loop
        self.stats = WalStats()
        self.failed: WalWriteError | None = None
        self.fatal = False  # failed for good (fsync error, I/O error) rather than a full disk
        self._last_probe = 0.0
        self.segment = segment
        self.written = 0  # bytes appended in total (a log sequence number across segments)
        self.synced = 0  # bytes known durable; updated on the loop thread
        self.segment_bytes = 0
        self.unsynced_since: float | None = None  # monotonic time of the oldest unsynced append
        self._fd = self._open_segment(segment)
        self._fd_lock = threading.Lock()  # the sync thread holds it while using _fd
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._pass_future: asyncio.Future[None] | None = None
        self._cond = threading.Condition()
        self._want_sync = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        if policy != "no" or loop is not None:
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._sync_loop, name="wal-sync", daemon=True)
        self._thread.start()

    def set_policy(self, policy: Policy) -> None:
        """Switch the sync policy at runtime (loop thread; config reload)."""
        if policy not in POLICIES:
            raise ValueError(f"unknown appendfsync policy {policy!r}")
        if policy == "always" and self.loop is None:
            raise ValueError("appendfsync always needs an event loop")
        self.policy = policy
        if self._thread is None:
            self._start_thread()
        with self._cond:
            self._cond.notify()  # the sync loop re-reads the policy (everysec's interval)

    # -- files -----------------------------------------------------------------

    def _open_segment(self, segment: int) -> int:
        path = self.directory / wal_name(segment)
        fd = self.ops.open_append(path)
        size = os.lseek(fd, 0, os.SEEK_CUR)
        if size == 0:
            head = file_header(segment)
            self._write_all(fd, head)
            self.ops.fdatasync(fd)
            self.ops.fsync_dir(self.directory)  # the new name must survive a crash too
            size = len(head)
        self.segment_bytes = size
        return fd

    def _write_all(self, fd: int, data: bytes | memoryview) -> None:
        self.ops.write_all(fd, data)

    # -- appending (loop thread) ------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Write one batch record; returns the log position just after it."""
        if self.failed is not None and (self.fatal or not self._try_recover()):
            raise WalWriteError(f"writes refused since an earlier log failure: {self.failed}")
        rec = encode_record(TYPE_BATCH, payload)
        try:
            n = self.ops.write(self._fd, rec)
            if n != len(rec):  # a short write: rare (a full disk, a signal); finish it or fail
                self._write_all(self._fd, memoryview(rec)[n:])
        except OSError as exc:
            err = WalWriteError(f"write to {wal_name(self.segment)} failed: {exc.strerror or exc}")
            # A full disk is the one failure we come back from: the bytes before this
            # record are intact (write() failed, not fsync), so once space returns the
            # partial record is cut off and appending resumes. Anything else is final.
            self._fail(err, fatal=exc.errno not in (errno.ENOSPC, errno.EDQUOT))
            raise err from exc
        self.written += len(rec)
        self.segment_bytes += len(rec)
        st = self.stats
        st.appends += 1
        st.bytes += len(rec)
        if self.unsynced_since is None:
            self.unsynced_since = time.monotonic()
        return self.written

    def _try_recover(self) -> bool:
        """After a full disk: once there is room again, cut the partial record and accept writes."""
        now = time.monotonic()
        if now - self._last_probe < RECOVER_PROBE_S:
            return False
        self._last_probe = now
        try:
            free = self.ops.free_bytes(self.directory)
            if free < RECOVER_FREE_BYTES:
                return False
            with self._fd_lock:
                self.ops.truncate(self._fd, self.segment_bytes)
                os.lseek(self._fd, self.segment_bytes, os.SEEK_SET)
        except OSError:
            return False
        log.warning("%d bytes free again: the log accepts writes again (was: %s)", free, self.failed)
        self.failed = None
        return True

    def waiter(self) -> asyncio.Future[None] | None:
        """Under `always`: a Future completing when everything appended so far is synced."""
        if self.policy != "always" or self.written <= self.synced:
            return None
        if self.failed is not None and self.fatal:
            return None  # apply() already raised; nothing new can be waiting
        if self._pass_future is None:
            assert self.loop is not None, "appendfsync always needs an event loop"
            self._pass_future = self.loop.create_future()
            self.loop.call_soon(self._end_of_pass)
        return self._pass_future

    def _end_of_pass(self) -> None:
        fut, self._pass_future = self._pass_future, None
        if fut is None:
            return
        if self.failed is not None and self.fatal:
            fut.set_exception(self.failed)
            return
        self._waiters.append((self.written, fut))
        with self._cond:
            self._want_sync = True
            self._cond.notify()

    def fsync_lag(self) -> float:
        """Age in seconds of the oldest applied write not yet synced (0 when all are)."""
        since = self.unsynced_since
        return 0.0 if since is None or self.written <= self.synced else time.monotonic() - since

    # -- syncing (sync thread) -------------------------------------------------------

    def _sync_loop(self) -> None:
        while True:
            # Read on every pass: set_policy may have changed it (and notified us).
            interval = 1.0 if self.policy == "everysec" else None
            with self._cond:
                if not self._want_sync and not self._stopping:
                    self._cond.wait(interval)
                if self._stopping:
                    return
                self._want_sync = False
            if (self.failed is not None and self.fatal) or self.written <= self.synced:
                continue
            started = time.monotonic()
            target = self.written  # every append up to here has returned from write()
            try:
                with self._fd_lock:
                    self.ops.fdatasync(self._fd)
            except OSError as exc:
                err = WalWriteError(f"fdatasync of {wal_name(self.segment)} failed: {exc.strerror or exc}")
                self._report(self._fail, err)
                return
            self._report(self._synced_to, target, started, time.monotonic() - started)

    def _report(self, fn: Callable[..., None], *args: object) -> None:
        if self.loop is None or self.loop.is_closed():
            fn(*args)
            return
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed meanwhile
            fn(*args)

    def _synced_to(self, target: int, started: float, seconds: float) -> None:
        self.stats.observe_fsync(seconds)
        if target <= self.synced:
            return
        self.synced = target
        # Writes after `target` happened after the sync started reading it.
        self.unsynced_since = None if self.written <= target else started
        waiters = self._waiters
        while waiters and waiters[0][0] <= target:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_result(None)

    def _fail(self, err: WalWriteError, fatal: bool = True) -> None:
        if self.failed is None or fatal:
            self.failed = err
            self.fatal = self.fatal or fatal
            log.error("write-ahead log failed, refusing writes %s: %s",
                      "from now on" if fatal else "until disk space returns", err)
        if not fatal:
            return  # the writes before this one are intact and keep waiting for their sync
        pending = list(self._waiters)
        self._waiters.clear()
        if self._pass_future is not None:
            pending.append((0, self._pass_future))
            self._pass_future = None
        for _, fut in pending:
            if not fut.done():
                fut.set_exception(err)

    # -- rotation and shutdown (loop thread) ---------------------------------------------

    def sync_now(self) -> None:
        """Sync the current segment on this thread (rotation, close, snapshots)."""
        if self.failed is not None and self.fatal:
            raise self.failed
        started = time.monotonic()
        try:
            with self._fd_lock:
                self.ops.fdatasync(self._fd)
        except OSError as exc:
            err = WalWriteError(f"fdatasync of {wal_name(self.segment)} failed: {exc.strerror or exc}")
            self._fail(err)
            raise err from exc
        self._synced_to(self.written, started, time.monotonic() - started)

    def rotate(self, segment: int) -> None:
        """Finish the current segment (synced) and continue in a new one."""
        self.sync_now()
        try:
            fd = self._open_segment(segment)
        except OSError as exc:
            err = WalWriteError(f"cannot create {wal_name(segment)}: {exc.strerror or exc}")
            self._fail(err)
            raise err from exc
        with self._fd_lock:
            old, self._fd = self._fd, fd
            self.segment = segment
        os.close(old)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        if not self.fatal and self.written > self.synced:
            with contextlib.suppress(WalWriteError):  # already logged and recorded by _fail
                self.sync_now()
        os.close(self._fd)
