"""The dispatcher's fast path (GET/SET/INCR on a plain session) answers exactly
as the generic path does: same reply frames, same error types."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from velocity_engine.config import EngineSettings
from velocity_engine.dispatch import Dispatcher, Session
from velocity_engine.server import Server
from velocity_engine.storage import MemoryStorage
from vproto import fastcodec as fc
from vproto import messages as m
from vproto.errors import VelocityError
from vproto.frame import FEATURE_ZSTD, PROTOCOL_VERSION, Opcode
from vproto.values import INT64_MAX

MAX_KEY, MAX_VALUE = 16, 32


def _dispatcher(tmp: Path) -> Dispatcher:
    s = EngineSettings(data_dir=tmp, insecure=True, storage="memory", max_key_bytes=MAX_KEY, max_value_bytes=MAX_VALUE)
    return Server(s, MemoryStorage()).dispatcher


def _outcome(fn: object, *args: object) -> bytes | type[VelocityError]:
    try:
        return fn(*args)  # type: ignore[operator,no-any-return]
    except VelocityError as exc:
        return type(exc)


requests = st.lists(
    st.one_of(
        st.tuples(st.just(Opcode.GET), st.binary(max_size=MAX_KEY + 2).map(fc.encode_key_request)),
        st.tuples(
            st.just(Opcode.SET),
            st.builds(
                fc.encode_set_request,
                st.binary(max_size=MAX_KEY + 2),
                st.binary(max_size=MAX_VALUE + 2),
                st.integers(0, 3),
                st.sampled_from([0, 0, 60_000]),
                st.sampled_from([0, 0, 1, 2]),
            ),
        ),
        st.tuples(
            st.just(Opcode.INCR),
            st.builds(
                fc.encode_incr_request,
                st.binary(max_size=MAX_KEY + 2),
                st.sampled_from([1, 1, -5, INT64_MAX]),
            ),
        ),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(reqs=requests)
def test_fast_path_answers_like_the_generic_path(
    tmp_path_factory: pytest.TempPathFactory, reqs: list[tuple[int, bytes]]
) -> None:
    # Two servers fed the same requests, one through each path: replies and final state agree.
    fast, generic = _dispatcher(tmp_path_factory.mktemp("f")), _dispatcher(tmp_path_factory.mktemp("g"))
    s1, s2 = Session(), Session()
    fast.open_session(s1)  # --insecure: a session may run everything from the start
    generic.open_session(s2)
    assert s1.fast is fast.fast
    for op, body in reqs:
        handler = fast.fast[op]
        assert handler is not None
        assert _outcome(handler, body) == _outcome(generic.handle, s2, op, 0, body)
    assert fast.ks.scan(b"", b"", 1000) == generic.ks.scan(b"", b"", 1000)


def test_a_session_gets_fast_handlers_once_authenticated(tmp_path: Path) -> None:
    d = _dispatcher(tmp_path)
    s = Session()
    assert s.fast is None
    d.open_session(s)
    assert s.fast is d.fast
    z = Session()
    d.open_session(z)
    hello = m.HelloRequest(protocol_version=PROTOCOL_VERSION, features=FEATURE_ZSTD).encode()
    d.handle(z, Opcode.HELLO, 0, hello)
    assert z.fast is d.fast_zstd  # replies may need compressing: no fast GET, fast SET/INCR (tiny replies)
    assert d.fast_zstd[Opcode.GET] is None and d.fast_zstd[Opcode.SET] is not None
