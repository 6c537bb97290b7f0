from __future__ import annotations

import pytest
from velocity_engine.replication.batch_codec import Batch
from velocity_engine.replication.position_record import POSITION_KEY, read_position
from velocity_engine.replication.replicated_storage import NotWritableError, ReplicatedStorage
from velocity_engine.storage import MemoryStorage, StorageError
from velocity_engine.storage.base import Record


def test_every_batch_gets_a_sequence_number_stored_with_it() -> None:
    inner = MemoryStorage()
    rs = ReplicatedStorage(inner, 1 << 20)
    rs.apply(((b"a", Record(0, b"1")),))
    rs.apply([(b"b", Record(0, b"2")), (b"c", Record(0, b"3"))])
    assert rs.seq == 2 and read_position(inner.get(POSITION_KEY)) == (1, 2, 0)
    # The record is invisible to the command layer's counts and scans.
    assert len(rs) == 3 and [k for k, _ in rs.iter_from(b"")] == [b"a", b"b", b"c"]
    # A restart finds the exact position in the data.
    assert ReplicatedStorage(inner, 1 << 20).position.seq == 2


def test_a_replica_applies_only_the_stream() -> None:
    rs = ReplicatedStorage(MemoryStorage(), 1 << 20)
    rs.writable = False
    rs.apply_replicated(Batch(1, 1, 0, ((b"k", Record(0, b"v", 5)),)))
    rs.apply(((b"k", None),))  # its own expiry: dropped, the primary's deletion will come
    assert rs.get(b"k") is not None
    with pytest.raises(NotWritableError):
        rs.apply(((b"x", Record(0, b"v")),))
    with pytest.raises(StorageError, match="stream gap"):
        rs.apply_replicated(Batch(1, 3, 0, ()))


def test_a_full_copy_replaces_everything_and_is_marked_until_done() -> None:
    inner = MemoryStorage()
    rs = ReplicatedStorage(inner, 1 << 20)
    for i in range(3000):
        rs.apply(((b"old%d" % i, Record(0, b"x")),))
    rs.begin_full_copy()
    assert len(rs) == 0 and ReplicatedStorage(inner, 1).incomplete
    rs.load_chunk([(b"new", Record(0, b"y"))])
    rs.finish_full_copy(4, 77)
    again = ReplicatedStorage(inner, 1)
    assert not again.incomplete and again.position.seq == 77 and [k for k, _ in again.iter_from(b"")] == [b"new"]
