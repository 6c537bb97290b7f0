"""A bounded LRU of verified SSTable blocks, shared by all tables.

An entry is a block whose CRC was checked, with its entry offsets unpacked,
so a cached lookup is a binary search over a memoryview of the mmap. The
bound is on block bytes (the mmap pages are the kernel's to evict; this
bounds the Python objects we keep for them). Thread-safe: the loop thread
reads through it while background threads may drop a table's blocks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

BlockKey = tuple[int, int]  # (table number, block index)
CachedBlock = tuple[memoryview, tuple[int, ...]]


class BlockCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[BlockKey, tuple[CachedBlock, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: BlockKey) -> CachedBlock | None:
        with self._lock:
            hit = self._lru.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._lru.move_to_end(key)
            self.hits += 1
            return hit[0]

    def put(self, key: BlockKey, block: CachedBlock, size: int) -> None:
        if size > self.capacity:
            return
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = (block, size)
            self.used += size
            while self.used > self.capacity:
                _, (_, old) = self._lru.popitem(last=False)
                self.used -= old

    def drop_table(self, number: int) -> None:
        with self._lock:
            for key in [k for k in self._lru if k[0] == number]:
                self.used -= self._lru.pop(key)[1]
