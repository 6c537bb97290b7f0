"""The hot-path codec (vproto.fastcodec) against the reference encoder (messages.py).

Three properties, for random inputs including empty and extreme values:
- every fast encoder produces bytes IDENTICAL to `messages.<Table>(...).encode()`;
- every fast decoder returns what the reference decoder returns;
- the flatc-GENERATED accessors (vproto.fbs.*.GetRootAs) read the fast output.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from vproto import fastcodec as fc
from vproto import messages as m
from vproto.fbs.GetResponse import GetResponse as FbGetResponse
from vproto.fbs.IncrRequest import IncrRequest as FbIncrRequest
from vproto.fbs.IncrResponse import IncrResponse as FbIncrResponse
from vproto.fbs.KeyRequest import KeyRequest as FbKeyRequest
from vproto.fbs.SetRequest import SetRequest as FbSetRequest
from vproto.values import INT64_MAX, INT64_MIN

# Short byte strings hit every alignment case (lengths 0..9 cover all paddings);
# the occasional long one checks that nothing depends on small sizes.
blobs = st.one_of(st.binary(max_size=9), st.binary(min_size=10, max_size=300))
keys = blobs
kinds = st.integers(0, 255)  # 0-3 are assigned; a future kind must still round-trip
conditions = st.integers(0, 255)
i64 = st.one_of(
    st.sampled_from([0, 1, -1, 2, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, 2**31, -(2**31)]),
    st.integers(INT64_MIN, INT64_MAX),
)

EXAMPLES = settings(max_examples=300, deadline=None)


def _vec(obj: Any, name: str) -> bytes:
    """A [ubyte] field read through the generated accessors (numpy is not required)."""
    get = getattr(obj, name)
    return bytes(get(j) for j in range(getattr(obj, f"{name}Length")()))


# ---- encoders: byte-identical to the reference ------------------------------------


@EXAMPLES
@given(key=keys)
@example(key=b"")
@example(key=b"k")
def test_key_request_identical(key: bytes) -> None:
    fast = fc.encode_key_request(key)
    assert fast == m.KeyRequest(key).encode()
    fb = FbKeyRequest.GetRootAs(fast, 0)
    assert _vec(fb, "Key") == key


@EXAMPLES
@given(key=keys, delta=i64)
@example(key=b"", delta=1)
@example(key=b"", delta=5)
@example(key=b"c", delta=INT64_MIN)
@example(key=b"abcd", delta=0)
def test_incr_request_identical(key: bytes, delta: int) -> None:
    fast = fc.encode_incr_request(key, delta)
    assert fast == m.IncrRequest(key, delta).encode()
    fb = FbIncrRequest.GetRootAs(fast, 0)
    assert _vec(fb, "Key") == key
    assert fb.Delta() == delta


@EXAMPLES
@given(key=keys, value=blobs, kind=kinds, ttl=i64, cond=conditions)
@example(key=b"", value=b"", kind=0, ttl=0, cond=0)
@example(key=b"k", value=b"", kind=1, ttl=5, cond=1)
@example(key=b"", value=b"v", kind=0, ttl=0, cond=2)
@example(key=b"k", value=b"v", kind=0, ttl=0, cond=0)
@example(key=b"k", value=b"v", kind=3, ttl=0, cond=0)
@example(key=b"k", value=b"v", kind=0, ttl=0, cond=2)
@example(key=b"k", value=b"v", kind=2, ttl=INT64_MAX, cond=2)
@example(key=b"key", value=b"value", kind=0, ttl=-1, cond=0)
def test_set_request_identical(key: bytes, value: bytes, kind: int, ttl: int, cond: int) -> None:
    fast = fc.encode_set_request(key, value, kind, ttl, cond)
    assert fast == m.SetRequest(key, value, kind, ttl, cond).encode()
    fb = FbSetRequest.GetRootAs(fast, 0)
    assert (_vec(fb, "Key"), _vec(fb, "Value")) == (key, value)
    assert (fb.Kind(), fb.TtlMs(), fb.Condition()) == (kind, ttl, cond)


@EXAMPLES
@given(found=st.booleans(), kind=kinds, value=blobs)
@example(found=False, kind=0, value=b"")
@example(found=True, kind=0, value=b"")
@example(found=True, kind=2, value=b"")
@example(found=False, kind=1, value=b"x")
@example(found=True, kind=0, value=b"\x00")
def test_get_response_identical(found: bool, kind: int, value: bytes) -> None:
    fast = fc.encode_get_response(found, kind, value)
    assert fast == m.GetResponse(found, kind, value).encode()
    fb = FbGetResponse.GetRootAs(fast, 0)
    assert (fb.Found(), fb.Kind(), _vec(fb, "Value")) == (found, kind, value)


@EXAMPLES
@given(value=i64)
@example(value=0)
def test_incr_response_identical(value: int) -> None:
    fast = fc.encode_incr_response(value)
    assert fast == m.IncrResponse(value).encode()
    assert FbIncrResponse.GetRootAs(fast, 0).Value() == value


def test_constant_replies_match_reference() -> None:
    assert m.SetResponse(True).encode() == fc.SET_APPLIED
    assert m.SetResponse(False).encode() == fc.SET_NOT_APPLIED
    assert m.BoolResponse(True).encode() == fc.BOOL_TRUE
    assert m.BoolResponse(False).encode() == fc.BOOL_FALSE
    assert m.GetResponse().encode() == fc.GET_NOT_FOUND


# ---- decoders: equal to the reference decoders ------------------------------------


@EXAMPLES
@given(key=keys)
def test_decode_key_request(key: bytes) -> None:
    body = m.KeyRequest(key).encode()
    assert fc.decode_key_request(body) == m.KeyRequest.decode(body).key == key


@EXAMPLES
@given(key=keys, value=blobs, kind=kinds, ttl=i64, cond=conditions)
def test_decode_set_request(key: bytes, value: bytes, kind: int, ttl: int, cond: int) -> None:
    body = m.SetRequest(key, value, kind, ttl, cond).encode()
    ref = m.SetRequest.decode(body)
    assert fc.decode_set_request(body) == (ref.key, ref.value, ref.kind, ref.ttl_ms, ref.condition)
    assert ref == m.SetRequest(key, value, kind, ttl, cond)


@EXAMPLES
@given(key=keys, delta=i64)
def test_decode_incr_request(key: bytes, delta: int) -> None:
    body = m.IncrRequest(key, delta).encode()
    ref = m.IncrRequest.decode(body)
    assert fc.decode_incr_request(body) == (ref.key, ref.delta) == (key, delta)


@EXAMPLES
@given(found=st.booleans(), kind=kinds, value=blobs)
def test_decode_get_response(found: bool, kind: int, value: bytes) -> None:
    body = m.GetResponse(found, kind, value).encode()
    ref = m.GetResponse.decode(body)
    assert fc.decode_get_response(body) == (ref.found, ref.kind, ref.value) == (found, kind, value)


@EXAMPLES
@given(value=i64)
def test_decode_i64(value: int) -> None:
    assert fc.decode_i64(m.IncrResponse(value).encode()) == value
    assert fc.decode_i64(m.TtlResponse(value).encode()) == m.TtlResponse.decode(
        m.TtlResponse(value).encode()
    ).ttl_ms


@given(value=st.booleans())
def test_decode_bool(value: bool) -> None:
    assert fc.decode_bool(m.BoolResponse(value).encode()) is value
    assert fc.decode_bool(m.SetResponse(value).encode()) is value


def test_empty_bodies_decode_to_defaults() -> None:
    assert fc.decode_key_request(b"") == m.KeyRequest.decode(b"").key == b""
    assert fc.decode_set_request(b"") == (b"", b"", 0, 0, 0)
    assert fc.decode_incr_request(b"") == (b"", 1)  # delta's schema default is 1
    assert m.IncrRequest.decode(b"").delta == 1
    assert fc.decode_get_response(b"") == (False, 0, b"")
    assert fc.decode_bool(b"") is False
    assert fc.decode_i64(b"") == 0


def _other_layout_set_request(key: bytes, value: bytes, kind: int, ttl: int, cond: int) -> bytes:
    """A valid SetRequest laid out unlike the canonical encoder (fields in declaration
    order, vectors created after the scalars), as another SDK might produce it."""
    import flatbuffers
    from vproto.fbs import SetRequest as gen

    b = flatbuffers.Builder(0)
    voff = b.CreateByteVector(value)
    koff = b.CreateByteVector(key)
    gen.Start(b)
    gen.AddCondition(b, cond)
    gen.AddKind(b, kind)
    gen.AddTtlMs(b, ttl)
    gen.AddKey(b, koff)
    gen.AddValue(b, voff)
    b.Finish(gen.End(b))
    return bytes(b.Output())


@EXAMPLES
@given(key=keys, value=blobs, kind=st.integers(0, 3), ttl=i64, cond=st.integers(0, 2))
def test_decoders_accept_any_valid_layout(key: bytes, value: bytes, kind: int, ttl: int, cond: int) -> None:
    body = _other_layout_set_request(key, value, kind, ttl, cond)
    assert fc.decode_set_request(body) == (key, value, kind, ttl, cond)
    assert m.SetRequest.decode(body) == m.SetRequest(key, value, kind, ttl, cond)
