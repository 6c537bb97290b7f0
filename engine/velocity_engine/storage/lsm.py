"""LsmStorage: the durable Storage (WAL + memtable, flushed to SSTables).

Write path (loop thread): encode the batch, append it to the WAL (a failed
append raises StorageError before anything changes), then apply it to the
memtable. Durability is the WAL's business (wal_writer.py); `sync_waiter`
is its group-commit hook.

Open (recovery): read the manifest (the table set and the first WAL segment
not yet in tables), then replay WAL segments from there into a fresh
memtable. A torn tail of the newest segment is cut off with a warning;
any other damage raises CorruptionError and the engine refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from velocity_engine.fsutil import fsync_dir
from velocity_engine.storage.base import Mutation, Record
from velocity_engine.storage.entry_codec import encode_batch
from velocity_engine.storage.filenames import storage_dir, wal_name, wal_numbers
from velocity_engine.storage.memtable import Memtable
from velocity_engine.storage.wal_format import FILE_HEADER_SIZE
from velocity_engine.storage.wal_reader import replay
from velocity_engine.storage.wal_writer import FileOps, Policy, WalWriter

log = logging.getLogger(__name__)


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


class LsmStorage:
    """Storage protocol implementation; event-loop thread only (see base.py)."""

    def __init__(
        self,
        data_dir: Path,
        options: LsmOptions | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        ops: FileOps | None = None,
    ) -> None:
        self.options = options or LsmOptions()
        self.dir = storage_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.recovery = RecoveryReport()
        self._live = 0
        self._expiring: dict[bytes, int] = {}
        self._cycle: list[bytes] = []
        segments = wal_numbers(self.dir)
        self.mem = Memtable(segments[-1] if segments else 1)
        self._replay(segments)
        next_segment = (segments[-1] + 1) if segments else 1
        self.wal = WalWriter(self.dir, next_segment, self.options.appendfsync, loop, ops)
        fsync_dir(self.dir)

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
            path.unlink()
        else:
            with open(path, "r+b") as fh:
                fh.truncate(valid_end)
                os.fsync(fh.fileno())
        fsync_dir(self.dir)

    # -- the Storage protocol --------------------------------------------------------

    def get(self, key: bytes) -> Record | None:
        found, rec = self.mem.lookup(key)
        return rec if found else None

    def apply(self, mutations: Sequence[Mutation]) -> None:
        self.wal.append(encode_batch(list(mutations)))
        self._apply_mem(mutations)

    def _apply_mem(self, mutations: Sequence[Mutation]) -> None:
        mem = self.mem
        for key, rec in mutations:
            existed = self.get(key) is not None
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

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record]]:
        for key, rec in self.mem.items_from(start):
            if rec is not None:
                yield key, rec

    def expiring_sample(self, n: int) -> list[tuple[bytes, int]]:
        if not self._cycle:
            self._cycle = list(self._expiring)
        out: list[tuple[bytes, int]] = []
        while self._cycle and len(out) < n:
            key = self._cycle.pop()
            at = self._expiring.get(key)
            if at is not None:
                out.append((key, at))
        return out

    def __len__(self) -> int:
        return self._live

    def memtable_bytes(self) -> int:
        return self.mem.approx_bytes

    @property
    def writes_refused(self) -> bool:
        return self.wal.failed is not None

    def stats(self) -> dict[str, Any]:
        w = self.wal
        return {
            "engine": "lsm",
            "keys_with_ttl": len(self._expiring),
            "data_bytes": self.mem.approx_bytes,
            "memtable_bytes": self.mem.approx_bytes,
            "wal_bytes": w.segment_bytes,
            "wal_segment": w.segment,
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
            },
        }

    def close(self) -> None:
        self.wal.close()
