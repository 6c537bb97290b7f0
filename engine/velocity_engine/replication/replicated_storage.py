"""ReplicatedStorage: the Storage the command layer sees, wrapping the local one.

It sits above the storage seam (storage/base.py) and adds three things:

- every batch gets the next sequence number and is stored together with its
  position record (position_record.py), atomically, by the local storage;
- every batch goes into the backlog (backlog.py), from which replicas are fed;
- durability of a write can include replicas: `sync_waiter()` combines the
  local storage's waiter with the replication waiter (sync mode).

On a replica the wrapper is read-only for the command layer: the only
mutations the keyspace makes on its own there are deletions of expired keys,
which are dropped (the primary's own deletion arrives on the stream), so a
replica never writes anything the primary did not. Stream batches come in
through `apply_replicated()`.

Event-loop thread only, like every Storage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from velocity_engine.replication.backlog import Backlog
from velocity_engine.replication.batch_codec import Batch
from velocity_engine.replication.position import Position
from velocity_engine.replication.position_record import (
    INCOMPLETE,
    POSITION_KEY,
    position_record,
    read_position,
)
from velocity_engine.replication.position_record import (
    pack_position as _pack_position,
)
from velocity_engine.storage.base import Mutation, Record, Storage, StorageError

WIPE_CHUNK = 1024


class NotWritableError(StorageError):
    """A write reached the storage of a replica (the dispatcher should have redirected it)."""


_time_ns = time.time_ns


def wall_ms() -> int:
    return _time_ns() // 1_000_000


class ReplicatedStorage:
    def __init__(self, inner: Storage, backlog_bytes: int) -> None:
        self.inner = inner
        # Reads go straight to the local storage: no wrapper cost on GET.
        self.get = inner.get
        pos = read_position(inner.get(POSITION_KEY))
        if pos is None:
            self.seq = self.seq_epoch = 0
            self.incomplete = False
            self._has_record = False
        else:
            self.seq_epoch, self.seq = pos[0], pos[1]  # the last batch applied: its epoch and number
            self.incomplete = bool(pos[2] & INCOMPLETE)
            self._has_record = True
        self.epoch = max(self.seq_epoch, 1)  # the epoch new batches get on a primary
        self.writable = True
        self.backlog = Backlog(backlog_bytes, self.seq)
        self.last_write_ms = 0
        # Set by the replication manager:
        self.gate: Callable[[Sequence[Mutation]], None] | None = None  # may refuse a write (sync mode)
        self.replication_waiter: Callable[[int], asyncio.Future[None] | None] | None = None
        self.on_apply: Callable[[], None] = _nothing

    @property
    def position(self) -> Position:
        return Position(self.seq_epoch, self.seq)

    # -- writes ------------------------------------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> None:
        if not self.writable:
            if all(rec is None for _, rec in mutations):
                return  # a replica's own expiry: the primary's deletion will arrive on the stream
            raise NotWritableError("this node is a replica: writes go to the primary")
        gate = self.gate
        if gate is not None:
            gate(mutations)
        # Hot path (every write): kept to plain attribute updates.
        seq = self.seq + 1
        epoch = self.epoch
        batch = tuple(mutations)
        self.inner.apply((*batch, (POSITION_KEY, Record(0, _pack_position(epoch, seq, 0), 0))))
        self._has_record = True
        self.seq = seq
        self.seq_epoch = epoch
        now = self.last_write_ms = _time_ns() // 1_000_000
        self.backlog.append(epoch, seq, now, batch)
        self.on_apply()

    def apply_replicated(self, batch: Batch) -> None:
        """A batch from the primary's stream; it must be the next one."""
        if batch.seq != self.seq + 1:
            raise StorageError(f"stream gap: got batch {batch.seq}, expected {self.seq + 1}")
        self.inner.apply((*batch.mutations, (POSITION_KEY, position_record(batch.epoch, batch.seq))))
        self._has_record = True
        self.seq = batch.seq
        self.seq_epoch = batch.epoch
        self.last_write_ms = batch.time_ms
        if batch.raw:
            self.backlog.append_encoded(batch.seq, batch.raw)
        else:
            self.backlog.append(batch.epoch, batch.seq, batch.time_ms, batch.mutations)

    # -- full copy (replica) -------------------------------------------------------

    def begin_full_copy(self) -> None:
        """Mark the data incomplete, then remove every key: a copy starts from nothing."""
        self.inner.apply(((POSITION_KEY, position_record(0, 0, INCOMPLETE)),))
        self._has_record = True
        self.incomplete = True
        while True:
            keys: list[bytes] = []
            for key, _ in self.inner.iter_from(b""):
                if key != POSITION_KEY:
                    keys.append(key)
                    if len(keys) == WIPE_CHUNK:
                        break
            if not keys:
                break
            self.inner.apply([(k, None) for k in keys])

    def load_chunk(self, mutations: Sequence[Mutation]) -> None:
        if mutations:
            self.inner.apply(mutations)

    def finish_full_copy(self, epoch: int, seq: int) -> None:
        self.inner.apply(((POSITION_KEY, position_record(epoch, seq)),))
        self.incomplete = False
        self.seq = seq
        self.seq_epoch = epoch
        self.backlog.clear(seq)

    def snapshot(self) -> list[Mutation]:
        """Every record, captured now (between two applies: consistent at self.seq)."""
        return [(k, r) for k, r in self.inner.iter_from(b"") if k != POSITION_KEY]

    # -- the rest of the Storage protocol ------------------------------------------

    def sync_waiter(self) -> asyncio.Future[None] | None:
        local = self.inner.sync_waiter()
        rw = self.replication_waiter
        remote = rw(self.seq) if rw is not None else None
        if remote is None:
            return local
        if local is None:
            return remote
        return _both(local, remote)

    def sync_waiter_for(self, seq: int) -> asyncio.Future[None] | None:
        """Durability of batch `seq` alone: call it in the event-loop pass that wrote the batch
        (the local part is that pass's group commit). Done once the batch is durable locally
        and, in sync mode, acknowledged by the sync quorum; fails with NotEnoughReplicasError
        after sync_timeout_s (the write's outcome is then unknown to its client) or with the
        storage's error. A connection waits for the newest batch its own requests wrote,
        so writes on other connections never hold its replies back. None: already durable."""
        local = self.inner.sync_waiter()
        rw = self.replication_waiter
        remote = rw(seq) if rw is not None and seq > 0 else None
        if remote is None:
            return local
        if local is None:
            return remote
        return _both(local, remote)

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record]]:
        for key, rec in self.inner.iter_from(start):
            if key != POSITION_KEY:
                yield key, rec

    def expiring_sample(self, n: int) -> list[tuple[bytes, int]]:
        return self.inner.expiring_sample(n)

    def __len__(self) -> int:
        return len(self.inner) - (1 if self._has_record else 0)

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def _nothing() -> None:
    pass


def _both(a: asyncio.Future[None], b: asyncio.Future[None]) -> asyncio.Future[None]:
    """Done when both are; fails if either fails (replies are then never sent)."""
    out: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    left = [2]

    def done(f: asyncio.Future[None]) -> None:
        if out.done():
            return
        if f.cancelled():
            out.cancel()
            return
        exc = f.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        left[0] -= 1
        if not left[0]:
            out.set_result(None)

    a.add_done_callback(done)
    b.add_done_callback(done)
    return out
