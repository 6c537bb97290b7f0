"""Merging sorted sources where the newest version of a key wins.

Each source yields (key, record-or-tombstone) in strictly increasing key
order; sources are given newest first. The merge yields every key once,
with the version from the newest source that has it (tombstones included:
the caller decides whether to drop them).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from velocity_engine.storage.base import Record

Entry = tuple[bytes, Record | None]


def merge_newest_first(sources: Iterable[Iterable[Entry]]) -> Iterator[Entry]:
    iters = [iter(s) for s in sources]
    heap: list[tuple[bytes, int, Record | None]] = []
    for i, it in enumerate(iters):
        first = next(it, None)
        if first is not None:
            heap.append((first[0], i, first[1]))
    heapq.heapify(heap)
    last: bytes | None = None
    while heap:
        key, i, rec = heap[0]
        nxt = next(iters[i], None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt[0], i, nxt[1]))
        if key == last:
            continue  # an older version of a key already yielded
        last = key
        yield key, rec
