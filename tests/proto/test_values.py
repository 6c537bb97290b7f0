"""Typed values: Python objects <-> (ValueKind, bytes)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vproto.values import (
    INT64_MAX,
    INT64_MIN,
    ValueKind,
    decode_int,
    decode_value,
    encode_int,
    encode_value,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)


@pytest.mark.parametrize(
    "value,kind,data",
    [
        (b"\x00\xff", ValueKind.BYTES, b"\x00\xff"),
        (bytearray(b"ab"), ValueKind.BYTES, b"ab"),
        (memoryview(b"mv"), ValueKind.BYTES, b"mv"),
        ("héllo", ValueKind.STRING, "héllo".encode()),
        ("", ValueKind.STRING, b""),
        (-42, ValueKind.INT, (-42).to_bytes(8, "little", signed=True)),
        (True, ValueKind.JSON, b"true"),
        (None, ValueKind.JSON, b"null"),
        (1.5, ValueKind.JSON, b"1.5"),
        ({"active": True}, ValueKind.JSON, b'{"active":true}'),
        ([1, "a"], ValueKind.JSON, b'[1,"a"]'),
    ],
)
def test_encode_table(value: Any, kind: int, data: bytes) -> None:
    assert encode_value(value) == (kind, data)


@given(n=st.integers(INT64_MIN, INT64_MAX))
def test_int_round_trip(n: int) -> None:
    kind, data = encode_value(n)
    assert kind == ValueKind.INT and len(data) == 8
    assert decode_value(kind, data) == n == decode_int(encode_int(n))


@given(s=st.text())
def test_str_round_trip(s: str) -> None:
    assert decode_value(*encode_value(s)) == s


@given(b=st.binary())
def test_bytes_round_trip(b: bytes) -> None:
    assert decode_value(*encode_value(b)) == b


@given(v=json_values)
def test_json_round_trip(v: Any) -> None:
    kind, data = encode_value(v)
    if isinstance(v, str):
        assert kind == ValueKind.STRING
    else:
        assert kind == ValueKind.JSON
    assert decode_value(kind, data) == v


def test_bool_is_json_not_int() -> None:
    assert encode_value(True)[0] == ValueKind.JSON
    assert decode_value(*encode_value(False)) is False


@pytest.mark.parametrize("n", [INT64_MAX + 1, INT64_MIN - 1, 2**100])
def test_int_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="64 bits"):
        encode_value(n)


@pytest.mark.parametrize("v", [math.nan, math.inf, {1, 2}, object()])
def test_unstorable(v: Any) -> None:
    with pytest.raises(TypeError):
        encode_value(v)


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"\x00" * 9])
def test_int_must_be_8_bytes(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_int(data)


def test_unknown_kind_is_raw_bytes() -> None:
    # Spec: unknown kinds MUST be returned to the application as raw bytes.
    assert decode_value(9, b"\x01\x02") == b"\x01\x02"
