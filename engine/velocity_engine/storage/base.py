"""The contract between the command layer (keyspace.py) and storage.

Ownership and threading: a Storage is used from the event loop thread only.
Every mutation arrives through `apply()`, which is atomic (all or nothing:
MSET relies on it) and already carries absolute expiry times, so a log of
mutations replays to the same state on any clock. Expiry *policy* (lazy and
active) lives in the command layer; storage only records `expire_at_ms`.

Durability: `apply()` makes a change visible at once. `sync_waiter()`
returns None when every applied change is as durable as the configured
policy promises, or a Future that completes when it is (group commit: the
connection holds its replies until then). A storage that cannot make a
write durable raises StorageError from `apply()` and refuses further writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class Record:
    """A stored value. `expire_at_ms` is Unix time in ms; 0 means no expiry."""

    kind: int
    value: bytes
    expire_at_ms: int = 0


# (key, record) to write, or (key, None) to delete.
Mutation = tuple[bytes, Record | None]


class StorageError(Exception):
    """Storage could not carry out a write; writes are refused from now on."""


class Storage(Protocol):
    def get(self, key: bytes) -> Record | None:
        """The stored record, expired or not (the caller decides)."""

    def apply(self, mutations: Sequence[Mutation]) -> None:
        """Apply all mutations atomically, in order."""

    def sync_waiter(self) -> asyncio.Future[None] | None:
        """None if applied writes are durable enough, else a Future for when they are."""

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record]]:
        """Records with key >= start in byte order. Must not be held across writes."""

    def expiring_sample(self, n: int) -> list[tuple[bytes, int]]:
        """Up to n (key, expire_at_ms) pairs of keys with a TTL, cycling through all of them."""

    def __len__(self) -> int:
        """Number of stored keys (expired ones not yet removed included)."""

    def stats(self) -> dict[str, Any]:
        """Figures for INFO and metrics."""

    def close(self) -> None:
        """Release resources; pending writes are made durable first."""


def sample_expiring(cycle: list[bytes], expiring: Mapping[bytes, int], n: int) -> list[tuple[bytes, int]]:
    """Up to n (key, expire_at_ms) pairs, walking `cycle` and refilling it from `expiring` when empty.

    `cycle` is the caller's cursor, kept between calls so that successive calls visit
    every key with a TTL before any is visited twice; keys removed since the refill are skipped.
    """
    if not cycle:
        cycle.extend(expiring)
    out: list[tuple[bytes, int]] = []
    while cycle and len(out) < n:
        key = cycle.pop()
        at = expiring.get(key)
        if at is not None:
            out.append((key, at))
    return out
