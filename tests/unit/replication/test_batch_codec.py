from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from velocity_engine.replication.batch_codec import (
    decode_batches,
    decode_mutations,
    encode_batch,
    encode_mutations,
)
from velocity_engine.replication.errors import StreamFormatError
from velocity_engine.storage.base import Record

records = st.builds(Record, st.integers(0, 3), st.binary(max_size=64), st.integers(0, 2**63))
mutations = st.lists(st.tuples(st.binary(min_size=1, max_size=32), st.none() | records), max_size=8)


@given(st.lists(mutations, min_size=1, max_size=5))
def test_batches_round_trip(batches: list[list[tuple[bytes, Record | None]]]) -> None:
    wire = b"".join(encode_batch(2, 10 + i, 1_700_000_000_000 + i, b) for i, b in enumerate(batches))
    got = decode_batches(wire)
    want = [(2, 10 + i, 1_700_000_000_000 + i) for i in range(len(batches))]
    assert [(b.epoch, b.seq, b.time_ms) for b in got] == want
    assert [list(b.mutations) for b in got] == batches


def test_snapshot_records_round_trip() -> None:
    muts = [(b"a", Record(1, b"x", 5)), (b"b", Record(0, b"", 0))]
    out: list[bytes] = []
    encode_mutations(muts, out)
    assert decode_mutations(b"".join(out)) == muts


def test_documented_example_decodes() -> None:
    # docs/formats/replication.md, section 3
    wire = bytes.fromhex("0200000000000000" "2d03000000000000" "00149cc29a010000" "01000000" "010000006b00")
    [b] = decode_batches(wire)
    assert (b.epoch, b.seq, b.mutations) == (2, 813, ((b"k", None),))


@pytest.mark.parametrize("cut", [1, 10, 27, 28, 30, 33])
def test_truncation_is_reported_with_the_offset(cut: int) -> None:
    wire = encode_batch(1, 1, 0, [(b"key", Record(1, b"value", 0))])
    with pytest.raises(StreamFormatError, match="offset"):
        decode_batches(wire[: len(wire) - cut])


def test_unknown_tag_is_refused() -> None:
    wire = bytearray(encode_batch(1, 1, 0, [(b"k", None)]))
    wire[-1] = 7
    with pytest.raises(StreamFormatError, match="unknown mutation tag 7"):
        decode_batches(bytes(wire))
