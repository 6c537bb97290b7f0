"""Tiered compaction: which tables to merge, and the merge itself.

Policy (docs/storage.md has the reasoning and numbers): a flush makes a
tier-0 table. Tables are kept oldest first and their tiers never increase
from older to newer. When FANOUT tables of one tier sit next to each other,
they are merged into one table of the next tier. Every byte is rewritten
once per tier, so write amplification is about log_FANOUT(data / memtable)
plus the WAL and the flush; reads check at most FANOUT-1 tables per tier
(bloom filters skip most of them).

Dropping data is safe only when nothing older can hold the key: tombstones
and expired values are dropped only by a merge that includes the oldest
table. Otherwise an expired value becomes a tombstone (it still shadows
older versions, but its value bytes go).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from velocity_engine.storage.manifest import TableMeta
from velocity_engine.storage.merge import merge_newest_first
from velocity_engine.storage.sstable_builder import SSTableBuilder, TableInfo
from velocity_engine.storage.sstable_reader import SSTable

FANOUT = 4
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class CompactionStats:
    compactions: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    seconds_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))

    def observe(self, seconds: float, read: int, written: int) -> None:
        self.compactions += 1
        self.seconds_sum += seconds
        self.bytes_read += read
        self.bytes_written += written
        i = 0
        while i < len(DURATION_BUCKETS) and seconds > DURATION_BUCKETS[i]:
            i += 1
        self.buckets[i] += 1


def pick(tables: Sequence[TableMeta], fanout: int = FANOUT) -> tuple[int, int] | None:
    """[start, end) of a run of >= fanout adjacent same-tier tables, newest run first."""
    j = len(tables) - 1
    while j >= 0:
        k = j
        while k > 0 and tables[k - 1].tier == tables[j].tier:
            k -= 1
        if j - k + 1 >= fanout:
            return k, j + 1
        j = k - 1
    return None


@dataclass
class MergeResult:
    info: TableInfo | None  # None when every entry was dropped
    dropped_expired: list[bytes]
    seconds: float
    bytes_read: int


def merge_tables(
    inputs: Sequence[SSTable],  # oldest first
    builder: SSTableBuilder,
    *,
    includes_oldest: bool,
    now_ms: int,
) -> MergeResult:
    """Merge inputs into builder (finished here, or aborted when empty)."""
    t0 = time.monotonic()
    added = 0
    dropped: list[bytes] = []
    for key, rec in merge_newest_first([t.iter_all() for t in reversed(inputs)]):
        if rec is None:
            if includes_oldest:
                continue
        elif rec.expire_at_ms and rec.expire_at_ms <= now_ms:
            dropped.append(key)
            if includes_oldest:
                continue
            rec = None
        builder.add(key, rec)
        added += 1
    read = sum(t.size for t in inputs)
    if not added:
        builder.abort()
        return MergeResult(None, dropped, time.monotonic() - t0, read)
    return MergeResult(builder.finish(), dropped, time.monotonic() - t0, read)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000

