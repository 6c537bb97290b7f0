"""In-memory storage: a dict for point lookups plus a sorted key index for SCAN."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from sortedcontainers import SortedList

from velocity_engine.storage.base import Mutation, Record, sample_expiring


class MemoryStorage:
    """Volatile storage; nothing survives a restart."""

    def __init__(self) -> None:
        self._data: dict[bytes, Record] = {}
        self._order: SortedList = SortedList()
        self._expiring: dict[bytes, int] = {}
        self._cycle: list[bytes] = []
        self._value_bytes = 0

    def get(self, key: bytes) -> Record | None:
        return self._data.get(key)

    def apply(self, mutations: Sequence[Mutation]) -> None:
        data = self._data
        for key, rec in mutations:
            old = data.get(key)
            if rec is None:
                if old is not None:
                    del data[key]
                    self._order.remove(key)
                    self._value_bytes -= len(key) + len(old.value)
                    self._expiring.pop(key, None)
                continue
            data[key] = rec
            if old is None:
                self._order.add(key)
                self._value_bytes += len(key) + len(rec.value)
            else:
                self._value_bytes += len(rec.value) - len(old.value)
            if rec.expire_at_ms:
                self._expiring[key] = rec.expire_at_ms
            elif old is not None and old.expire_at_ms:
                self._expiring.pop(key, None)

    def sync_waiter(self) -> asyncio.Future[None] | None:
        return None

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record]]:
        data = self._data
        for key in self._order.irange(minimum=start):
            yield key, data[key]

    def expiring_sample(self, n: int) -> list[tuple[bytes, int]]:
        return sample_expiring(self._cycle, self._expiring, n)

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, Any]:
        return {
            "engine": "memory",
            "keys_with_ttl": len(self._expiring),
            "data_bytes": self._value_bytes,
        }

    def close(self) -> None:
        pass
