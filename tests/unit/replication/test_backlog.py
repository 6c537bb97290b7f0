from __future__ import annotations

import pytest
from velocity_engine.replication.backlog import ENTRY_OVERHEAD, Backlog
from velocity_engine.replication.batch_codec import decode_batches
from velocity_engine.storage.base import Record


def _fill(b: Backlog, n: int, start: int = 1) -> None:
    for seq in range(start, start + n):
        b.append(1, seq, 1000 + seq, ((b"k%d" % seq, Record(0, b"v" * 10, 0)),))


def test_bounded_by_bytes_dropping_the_oldest() -> None:
    b = Backlog(max_bytes=10 * (ENTRY_OVERHEAD + 60))
    _fill(b, 100)
    assert b.bytes <= b.max_bytes and b.last_seq == 100
    assert b.first_seq > 1 and not b.covers(1) and b.covers(b.first_seq)
    with pytest.raises(LookupError, match="no longer in the backlog"):
        b.read(1, 1 << 20)


def test_read_returns_consecutive_encoded_batches() -> None:
    b = Backlog(max_bytes=1 << 20)
    _fill(b, 10)
    last, got = b.read(4, 1 << 20)
    assert last == 10
    batches = decode_batches(b"".join(got))
    assert [x.seq for x in batches] == list(range(4, 11))
    assert b.read(11, 1 << 20) == (10, [])
    assert b.time_of(5) == 1005 and b.time_of(11) is None


def test_a_gap_restarts_the_backlog() -> None:
    b = Backlog(max_bytes=1 << 20)
    _fill(b, 5)
    _fill(b, 3, start=50)  # after a full copy at 49
    assert (b.first_seq, b.last_seq) == (50, 52)
