"""LsmStorage: the durable Storage (WAL + memtable, flushed to SSTables, compacted).

Write path (loop thread): encode the batch, append it to the WAL (a failed
append raises StorageError before anything changes), apply it to the
memtable. Durability is the WAL's business (wal_writer.py); `sync_waiter`
is its group-commit hook. A full memtable is frozen (the WAL moves to a new
segment) and flushed to an SSTable by the flush thread.

Versions: the table set (`_tables`, oldest first) and the manifest state
change only on the loop thread, in `_install_flush` / `_install_compaction`,
which publish the manifest before the change is visible and delete files
(WAL segments, compacted tables) only after it is published. Background
threads build table files and read immutable tables; nothing else.

Open (recovery): CURRENT -> manifest -> open its tables (footer, index and
filter checked) -> delete orphans (tables, manifests and segments no
manifest needs) -> replay WAL segments from the manifest's log_number.
A torn tail of the newest segment is cut off with a warning; any other
damage raises CorruptionError and the engine refuses to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from velocity_engine.storage.base import Mutation, Record, sample_expiring
from velocity_engine.storage.block_cache import BlockCache
from velocity_engine.storage.bloom import key_hashes
from velocity_engine.storage.compaction import CompactionStats, MergeResult, merge_tables, pick, wall_ms
from velocity_engine.storage.entry_codec import encode_batch
from velocity_engine.storage.errors import CorruptionError, WalWriteError
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import (
    manifest_name,
    manifest_numbers,
    storage_dir,
    table_name,
    table_numbers,
    wal_name,
    wal_numbers,
)
from velocity_engine.storage.manifest import ManifestState, TableMeta, publish, read_current
from velocity_engine.storage.memtable import Memtable
from velocity_engine.storage.merge import merge_newest_first
from velocity_engine.storage.rate_limiter import Cancelled, RateLimiter
from velocity_engine.storage.sstable_builder import SSTableBuilder, TableInfo
from velocity_engine.storage.sstable_reader import BloomStats, SSTable
from velocity_engine.storage.wal_format import FILE_HEADER_SIZE
from velocity_engine.storage.wal_reader import replay
from velocity_engine.storage.wal_writer import Policy, WalWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_IMMUTABLE = 4  # frozen memtables waiting for the flush thread before we stop freezing
_ABSENT = object()  # not in a memtable (None there is a tombstone)


@dataclass(frozen=True)
class LsmOptions:
    appendfsync: Policy = "everysec"
    memtable_bytes: int = 64 * 1024 * 1024
    block_cache_bytes: int = 32 * 1024 * 1024
    compaction_rate_bytes: int = 64 * 1024 * 1024


@dataclass
class RecoveryReport:
    segments: int = 0
    batches: int = 0
    torn_bytes: int = 0
    torn_at: str = ""
    seconds: float = 0.0


class LsmStorage:
    """Storage protocol implementation; event-loop thread only (see base.py).

    Without an event loop (`loop=None`, unit tests and tools) flushes and
    compactions run inline, synchronously, so tests are deterministic.
    """

    def __init__(
        self,
        data_dir: Path,
        options: LsmOptions | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        ops: FileOps | None = None,
    ) -> None:
        t0 = time.monotonic()
        self.options = options or LsmOptions()
        self.loop = loop
        self.ops = ops or FileOps()  # every durable file operation (power-loss tests swap it)
        self.dir = storage_dir(data_dir)
        self.ops.make_dirs(self.dir)
        self.recovery = RecoveryReport()
        self.block_cache = BlockCache(self.options.block_cache_bytes)
        self.bloom_stats = BloomStats()
        self.compaction_stats = CompactionStats()
        self.flushes = 0
        self.flush_bytes = 0
        self._expiring: dict[bytes, int] = {}
        self._cycle: list[bytes] = []
        self._closed = False
        self._flushing = False
        self._compacting = False
        self._pins: dict[int, int] = {}  # table number -> snapshot readers still using it
        self._doomed: set[int] = set()  # compacted away, delete when unpinned
        self._limiter = RateLimiter(self.options.compaction_rate_bytes)
        self._flush_pool = ThreadPoolExecutor(1, thread_name_prefix="lsm-flush")
        self._compact_pool = ThreadPoolExecutor(1, thread_name_prefix="lsm-compact")

        cur = read_current(self.dir)
        self._manifest_no, self._state = cur if cur is not None else (0, ManifestState())
        self._readers: dict[int, SSTable] = {}
        try:
            for meta in self._state.tables:
                path = self.dir / table_name(meta.number)
                if not path.exists():
                    raise CorruptionError(path, 0, f"table named by {manifest_name(self._manifest_no)} is missing")
                self._readers[meta.number] = SSTable(path, meta.number, self.block_cache, self.bloom_stats)
        except BaseException:
            self._close_readers()
            raise
        self._tables: tuple[SSTable, ...] = tuple(self._readers[m.number] for m in self._state.tables)
        self._next_file = max(self._state.next_file, self._manifest_no + 1, max(self._all_numbers(), default=0) + 1)
        self._remove_orphans()
        self._live = self._state.live_keys
        self.mem = Memtable()
        self.imm: list[Memtable] = []  # frozen, oldest first
        self._replay([s for s in wal_numbers(self.dir) if s >= self._state.log_number])
        self.wal = WalWriter(self.dir, self._alloc(), self.options.appendfsync, loop, self.ops)
        self.ops.fsync_dir(self.dir)
        self.recovery.seconds = time.monotonic() - t0
        if self.mem.approx_bytes >= self.options.memtable_bytes:
            self._freeze()
        self._maybe_compact()

    # -- files and numbers -------------------------------------------------------

    def _all_numbers(self) -> list[int]:
        return wal_numbers(self.dir) + table_numbers(self.dir) + manifest_numbers(self.dir)

    def _alloc(self) -> int:
        n = self._next_file
        self._next_file += 1
        return n

    def _remove_orphans(self) -> None:
        """Files a crash left behind that no manifest needs."""
        live = {m.number for m in self._state.tables}
        removed = []
        for n in table_numbers(self.dir):
            if n not in live:
                removed.append(table_name(n))
        for n in manifest_numbers(self.dir):
            if n != self._manifest_no:
                removed.append(manifest_name(n))
        for n in wal_numbers(self.dir):
            if n < self._state.log_number:
                removed.append(wal_name(n))
        for entry in self.dir.iterdir():
            if entry.name.startswith("."):  # an interrupted atomic_write
                removed.append(entry.name)
        for name in removed:
            self.ops.unlink(self.dir / name)
        if removed:
            log.info("removed %d file(s) left over from an interrupted flush/compaction: %s",
                     len(removed), ", ".join(sorted(removed)))
            self.ops.fsync_dir(self.dir)

    # -- recovery ----------------------------------------------------------------

    def _replay(self, segments: list[int]) -> None:
        rep = self.recovery
        for number, scan in replay(self.dir, segments):
            rep.segments += 1
            for batch in scan.batches:
                self._apply_mem(batch)
                rep.batches += 1
            if scan.problem is not None:  # a torn tail (replay raised for anything else)
                offset, reason = scan.problem
                rep.torn_bytes = scan.dropped_bytes
                rep.torn_at = f"{scan.path}:{offset}"
                log.warning(
                    "WAL %s: dropping a torn tail of %d bytes at offset %d (%s); "
                    "those writes were never acknowledged as synced",
                    scan.path, scan.dropped_bytes, offset, reason,
                )
                self._cut_tail(number, scan.valid_end)

    def _cut_tail(self, number: int, valid_end: int) -> None:
        path = self.dir / wal_name(number)
        if valid_end < FILE_HEADER_SIZE:
            self.ops.unlink(path)
        else:
            self.ops.truncate_file(path, valid_end)
        self.ops.fsync_dir(self.dir)

    # -- reads -----------------------------------------------------------------------

    def get(self, key: bytes) -> Record | None:
        rec = self.mem.data.get(key, _ABSENT)  # Memtable.lookup inlined: the hot path of GET and SET
        if rec is not _ABSENT:
            return rec  # type: ignore[return-value]
        return self._get_older(key)

    def _get_older(self, key: bytes) -> Record | None:
        """Lookup below the active memtable: frozen memtables, then tables, newest first."""
        for m in reversed(self.imm):
            found, rec = m.lookup(key)
            if found:
                return rec
        hashes = None
        for t in reversed(self._tables):
            if t.smallest <= key <= t.largest:
                if hashes is None:
                    hashes = key_hashes(key)  # once per lookup, not once per table
                found, rec = t.get(key, hashes)
                if found:
                    return rec
        return None

    def _sources_from(self, start: bytes) -> list[Iterator[tuple[bytes, Record | None]]]:
        srcs = [self.mem.items_from(start)]
        srcs += [m.items_from(start) for m in reversed(self.imm)]
        srcs += [t.iter_from(start) for t in reversed(self._tables)]
        return srcs

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record]]:
        for key, rec in merge_newest_first(self._sources_from(start)):
            if rec is not None:
                yield key, rec

    # -- writes ------------------------------------------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> None:
        self.wal.append(encode_batch(mutations))
        self._apply_mem(mutations)
        if self.mem.approx_bytes >= self.options.memtable_bytes:
            self._freeze()

    def _apply_mem(self, mutations: Sequence[Mutation]) -> None:
        mem = self.mem
        data = mem.data
        for key, rec in mutations:
            old = data.get(key, _ABSENT)
            existed = (old is not None) if old is not _ABSENT else self._get_older(key) is not None
            mem.put(key, rec)
            if rec is None:
                self._live -= existed
                self._expiring.pop(key, None)
            else:
                self._live += not existed
                if rec.expire_at_ms:
                    self._expiring[key] = rec.expire_at_ms
                else:
                    self._expiring.pop(key, None)

    def sync_waiter(self) -> asyncio.Future[None] | None:
        return self.wal.waiter()

    def set_appendfsync(self, policy: Policy) -> None:
        """Switch the WAL sync policy at runtime (config reload); see WalWriter.set_policy."""
        self.wal.set_policy(policy)
        self.options = replace(self.options, appendfsync=policy)

    # -- flush ---------------------------------------------------------------------------

    def _freeze(self) -> None:
        """Make the memtable immutable, continue in a new WAL segment, schedule a flush."""
        if len(self.imm) >= MAX_IMMUTABLE or self._closed or not len(self.mem):
            return  # the flush thread is behind: keep filling the current memtable
        old_segment = self.wal.segment
        try:
            self.wal.rotate(self._alloc())
        except WalWriteError:
            return  # recorded by the writer; writes are refused from now on
        frozen = self.mem
        frozen.freeze(old_segment, self._live)
        self.imm.append(frozen)
        self.mem = Memtable()
        self._schedule_flush()

    def flush(self) -> None:
        """Freeze and flush now (tests, snapshots); inline without a loop."""
        self._freeze()

    def _schedule_flush(self) -> None:
        if self._flushing or not self.imm or self._closed:
            return
        self._flushing = True
        mem = self.imm[0]
        number = self._alloc()
        self._run_bg(self._flush_pool, lambda: self._build_table(mem, number),
                     lambda res, exc: self._install_flush(mem, number, res, exc))

    def _build_table(self, mem: Memtable, number: int) -> SSTable:
        path = self.dir / table_name(number)
        builder = SSTableBuilder(path, number, ops=self.ops)
        try:
            for key, rec in mem.items():
                builder.add(key, rec)
            builder.finish()
        except BaseException:
            builder.abort()
            raise
        return SSTable(path, number, self.block_cache, self.bloom_stats)

    def _install_flush(self, mem: Memtable, number: int, table: SSTable | None, exc: BaseException | None) -> None:
        self._flushing = False
        if self._closed:
            if table is not None:
                table.close()
            return
        if exc is not None or table is None:
            # The data is still in the WAL and in memory: nothing is lost. Try again later.
            log.error("flush to %s failed: %s; retrying in 1 s", table_name(number), exc)
            self.ops.unlink(self.dir / table_name(number))
            self._later(1.0, self._schedule_flush)
            return
        meta = TableMeta(number, 0, table.size, table.entries, table.smallest, table.largest)
        state = ManifestState(
            next_file=0, log_number=mem.last_segment + 1, live_keys=mem.live_at_freeze,
            tables=[*self._state.tables, meta],
        )
        try:
            self._publish(state)
        except OSError as exc2:
            log.error("publishing the manifest failed: %s; retrying the flush in 1 s", exc2)
            table.close()
            self.ops.unlink(self.dir / table_name(number))
            self._later(1.0, self._schedule_flush)
            return
        self._readers[number] = table
        self._tables = (*self._tables, table)
        self.imm.remove(mem)
        self.flushes += 1
        self.flush_bytes += table.size
        for seg in wal_numbers(self.dir):
            if seg <= mem.last_segment:
                self.ops.unlink(self.dir / wal_name(seg))
        self._schedule_flush()
        self._maybe_compact()

    def _publish(self, state: ManifestState) -> None:
        number = self._alloc()
        state.next_file = self._next_file
        publish(self.dir, number, state, self.ops)
        old, self._manifest_no, self._state = self._manifest_no, number, state
        if old:
            self.ops.unlink(self.dir / manifest_name(old))

    # -- compaction ------------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        if self._compacting or self._closed:
            return
        run = pick(self._state.tables)
        if run is None:
            return
        start, end = run
        metas = self._state.tables[start:end]
        inputs = [self._readers[m.number] for m in metas]
        number = self._alloc()
        includes_oldest = start == 0
        self._compacting = True
        self._run_bg(
            self._compact_pool,
            lambda: self._merge(inputs, number, includes_oldest),
            lambda res, exc: self._install_compaction(metas, number, metas[0].tier + 1, res, exc),
        )

    def _merge(self, inputs: list[SSTable], number: int, includes_oldest: bool) -> tuple[MergeResult, SSTable | None]:
        path = self.dir / table_name(number)
        builder = SSTableBuilder(path, number, throttle=self._limiter.throttle, ops=self.ops)
        try:
            res = merge_tables(inputs, builder, includes_oldest=includes_oldest, now_ms=wall_ms())
        except BaseException:
            builder.abort()
            raise
        table = SSTable(path, number, self.block_cache, self.bloom_stats) if res.info is not None else None
        return res, table

    def _install_compaction(
        self, metas: list[TableMeta], number: int, tier: int,
        result: tuple[MergeResult, SSTable | None] | None, exc: BaseException | None,
    ) -> None:
        self._compacting = False
        if self._closed or exc is not None or result is None:
            if result is not None and result[1] is not None:
                result[1].close()
            self.ops.unlink(self.dir / table_name(number))
            if exc is not None and not isinstance(exc, Cancelled) and not self._closed:
                log.error("compaction into %s failed: %s; retrying in 5 s", table_name(number), exc)
                self._later(5.0, self._maybe_compact)
            return
        res, table = result
        tables = self._state.tables
        start = tables.index(metas[0])
        end = start + len(metas)
        assert tables[start:end] == metas, "only compaction removes tables, and one runs at a time"
        newer = self._tables[end:]
        # A dropped expired key stops counting unless a newer version exists.
        vanished_in_tables = [k for k in res.dropped_expired if not any(t.get(k)[0] for t in newer)]
        out: list[TableMeta] = []
        info: TableInfo | None = res.info
        if table is not None and info is not None:
            out = [TableMeta(number, tier, info.size, info.entries, info.smallest, info.largest)]
        state = ManifestState(
            next_file=0, log_number=self._state.log_number,
            live_keys=self._state.live_keys - len(vanished_in_tables),
            tables=[*tables[:start], *out, *tables[end:]],
        )
        try:
            self._publish(state)
        except OSError as exc2:
            log.error("publishing the manifest after compaction failed: %s", exc2)
            if table is not None:
                table.close()
            self.ops.unlink(self.dir / table_name(number))
            return
        for key in vanished_in_tables:
            if not self.mem.lookup(key)[0] and not any(m.lookup(key)[0] for m in self.imm):
                self._live -= 1
                self._expiring.pop(key, None)
        old = self._tables[start:end]
        self._tables = (*self._tables[:start], *([table] if table is not None else []), *self._tables[end:])
        if table is not None:
            self._readers[number] = table
        self.compaction_stats.observe(res.seconds, res.bytes_read, info.size if info is not None else 0)
        for t in old:
            del self._readers[t.number]
            self._doomed.add(t.number)
            self._retire(t)
        self._maybe_compact()

    def _retire(self, table: SSTable) -> None:
        if self._pins.get(table.number, 0) == 0 and table.number in self._doomed:
            self._doomed.discard(table.number)
            table.close()
            self.ops.unlink(table.path)

    # -- background plumbing ------------------------------------------------------------------

    def _run_bg(
        self, pool: ThreadPoolExecutor, job: Callable[[], T], done: Callable[[T | None, BaseException | None], None]
    ) -> None:
        loop = self.loop
        if loop is None:
            try:
                res = job()
            except Exception as exc:  # reported like a background failure
                done(None, exc)
                return
            done(res, None)
            return

        def finished(fut: Future[T]) -> None:
            exc = fut.exception()
            args = (None, exc) if exc is not None else (fut.result(), None)
            with contextlib.suppress(RuntimeError):  # loop closed: the next start cleans up
                loop.call_soon_threadsafe(done, *args)

        pool.submit(job).add_done_callback(finished)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        if self.loop is not None and not self._closed:
            self.loop.call_later(delay, fn)

    # -- snapshot support -------------------------------------------------------------------------

    def pin_view(self) -> tuple[list[Iterator[tuple[bytes, Record | None]]], Callable[[], None]]:
        """A point-in-time view: flush the memtable, pin the current tables.

        Returns iterators (newest first) over frozen memtables and tables, and
        a release function to call on the loop thread when done. Writes
        continue meanwhile; they go to a new memtable the view does not see.
        """
        self._freeze()
        mems = list(self.imm)
        srcs: list[Iterator[tuple[bytes, Record | None]]] = []
        if len(self.mem):
            # Not frozen (the flush thread is behind, or the log just failed): copy it.
            srcs.append(iter(list(self.mem.items())))
        tables = list(self._tables)
        for t in tables:
            self._pins[t.number] = self._pins.get(t.number, 0) + 1
        srcs += [m.items() for m in reversed(mems)]
        srcs += [t.iter_all() for t in reversed(tables)]

        def release() -> None:
            for t in tables:
                self._pins[t.number] -= 1
                self._retire(t)

        return srcs, release

    # -- expiry, counts, stats ----------------------------------------------------------------------

    def expiring_sample(self, n: int) -> list[tuple[bytes, int]]:
        return sample_expiring(self._cycle, self._expiring, n)

    def __len__(self) -> int:
        return self._live

    def memtable_bytes(self) -> int:
        return self.mem.approx_bytes + sum(m.approx_bytes for m in self.imm)

    @property
    def writes_refused(self) -> bool:
        return self.wal.failed is not None

    def tables_by_tier(self) -> dict[int, tuple[int, int]]:
        """tier -> (tables, bytes)."""
        out: dict[int, tuple[int, int]] = {}
        for m in self._state.tables:
            n, b = out.get(m.tier, (0, 0))
            out[m.tier] = (n + 1, b + m.size)
        return out

    def stats(self) -> dict[str, Any]:
        w = self.wal
        table_bytes = sum(m.size for m in self._state.tables)
        cs = self.compaction_stats
        return {
            "engine": "lsm",
            "keys_with_ttl": len(self._expiring),
            "data_bytes": self.memtable_bytes() + table_bytes,
            "memtable_bytes": self.memtable_bytes(),
            "immutable_memtables": len(self.imm),
            "sstables": len(self._state.tables),
            "sstable_bytes": table_bytes,
            "tiers": {str(t): {"tables": n, "bytes": b} for t, (n, b) in sorted(self.tables_by_tier().items())},
            "wal_bytes": w.segment_bytes,
            "wal_segment": w.segment,
            "flushes": self.flushes,
            "flush_bytes": self.flush_bytes,
            "compactions": cs.compactions,
            "compaction_bytes_written": cs.bytes_written,
            "block_cache": {"bytes": self.block_cache.used, "hits": self.block_cache.hits,
                            "misses": self.block_cache.misses},
            "bloom": {"negative": self.bloom_stats.negative, "maybe": self.bloom_stats.maybe,
                      "false_positives": self.bloom_stats.false_positive},
            "persistence": {
                "appendfsync": self.options.appendfsync,
                "last_fsync_ms": round(w.stats.last_fsync_s * 1000, 3),
                "fsync_lag_s": round(w.fsync_lag(), 3),
                "fsyncs": w.stats.fsyncs,
                "writes_refused": self.writes_refused,
                "write_error": str(w.failed) if w.failed is not None else "",
            },
            "recovery": {
                "segments": self.recovery.segments,
                "batches": self.recovery.batches,
                "torn_bytes": self.recovery.torn_bytes,
                "seconds": round(self.recovery.seconds, 3),
            },
        }

    def wait_idle(self) -> bool:
        """True when no flush or compaction is running or pending (tests poll this)."""
        return not (self._flushing or self._compacting or self.imm or pick(self._state.tables))

    def _close_readers(self) -> None:
        for t in self._readers.values():
            t.close()
        self._readers.clear()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._limiter.cancel()
        self._flush_pool.shutdown(wait=True)
        self._compact_pool.shutdown(wait=True)
        self.wal.close()
        self._close_readers()

