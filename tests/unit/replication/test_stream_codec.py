from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from velocity_engine.replication.stream_codec import encode_repl_batches
from vproto import messages as m


@given(st.binary(min_size=1, max_size=4096))
def test_matches_the_generated_builder_byte_for_byte(data: bytes) -> None:
    assert encode_repl_batches(data) == m.ReplBatches(data).encode()


def test_large_bodies_match_too() -> None:
    for n in (65_535, 65_536, 262_147, 1 << 20):
        data = bytes(range(256)) * (n // 256) + b"x" * (n % 256)
        body = encode_repl_batches(data)
        assert body == m.ReplBatches(data).encode()
        assert m.ReplBatches.decode(body).batches == data
