"""The memtable: the newest writes, in RAM, until they are flushed to an SSTable.

A dict answers point lookups in O(1); a SortedList of the same keys gives
ordered iteration for SCAN and for writing a sorted table. Deletes are kept
as tombstones (value None) because an older table may still hold the key.
Loop thread only; once frozen (`immutable`), it is read by the flush thread
and the loop thread, and never changed again.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedList

from velocity_engine.storage.base import Record

# Rough per-entry overhead of a dict slot, a SortedList slot and a Record.
ENTRY_OVERHEAD = 96


class Memtable:
    def __init__(self) -> None:
        self.last_segment = 0  # set when frozen: every write in WAL segments <= this is here or older
        self.live_at_freeze = 0  # the database's live key count when frozen (goes to the manifest)
        self.data: dict[bytes, Record | None] = {}
        self.order: SortedList = SortedList()
        self.approx_bytes = 0
        self.immutable = False

    def put(self, key: bytes, rec: Record | None) -> None:
        assert not self.immutable, "memtable is frozen"
        data = self.data
        size = len(key) + ENTRY_OVERHEAD + (len(rec.value) if rec is not None else 0)
        if key in data:
            old = data[key]
            self.approx_bytes -= len(key) + ENTRY_OVERHEAD + (len(old.value) if old is not None else 0)
        else:
            self.order.add(key)
        data[key] = rec
        self.approx_bytes += size

    def freeze(self, last_segment: int, live_keys: int) -> None:
        self.immutable = True
        self.last_segment = last_segment
        self.live_at_freeze = live_keys

    def lookup(self, key: bytes) -> tuple[bool, Record | None]:
        """(found, record): found with None means a tombstone."""
        data = self.data
        if key in data:
            return True, data[key]
        return False, None

    def items_from(self, start: bytes) -> Iterator[tuple[bytes, Record | None]]:
        data = self.data
        for key in self.order.irange(minimum=start):
            yield key, data[key]

    def items(self) -> Iterator[tuple[bytes, Record | None]]:
        data = self.data
        for key in self.order:
            yield key, data[key]

    def __len__(self) -> int:
        return len(self.data)
