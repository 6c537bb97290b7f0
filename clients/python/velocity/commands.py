"""The data commands, without I/O: each builds a request and knows how to read its reply.

Both clients run these: VelocityPool awaits the reply on an asyncio connection,
Velocity waits for it on a blocking socket. A command is one round trip; `read`
says whether it may be retried after a connection failure (writes may not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from vproto import fastcodec as fc
from vproto import messages as m
from vproto.frame import Consistency, Opcode
from vproto.values import decode_value, encode_value

from velocity.durations import TtlLike, parse_ttl_ms

T = TypeVar("T")
KeyLike = str | bytes
# Mapping is invariant in its key type: accept dict[str, X], dict[bytes, X] and mixed dicts.
KeyMapping = Mapping[str, Any] | Mapping[bytes, Any] | Mapping[KeyLike, Any]


class Cmd(NamedTuple, Generic[T]):
    opcode: int
    body: bytes
    read: bool
    consistency: int
    decode: Callable[[bytes], T]


def key_bytes(key: KeyLike) -> bytes:
    """A key as bytes: str is UTF-8 (lone surrogates kept), bytes-like as is."""
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"keys are str or bytes, not {type(key).__name__}")


def consistency(stale_ok: bool) -> int:
    """STALE_OK lets a replica answer a read (possibly behind the primary)."""
    return Consistency.STALE_OK if stale_ok else Consistency.LINEARIZABLE


def ttl_ms(ttl: TtlLike | None) -> int:
    return 0 if ttl is None else parse_ttl_ms(ttl)


def get(key: KeyLike, default: Any, stale_ok: bool) -> Cmd[Any]:
    def decode(body: bytes) -> Any:
        found, kind, value = fc.decode_get_response(body)
        return decode_value(kind, value) if found else default

    return Cmd(Opcode.GET, fc.encode_key_request(key_bytes(key)), True, consistency(stale_ok), decode)


def set_(key: KeyLike, value: Any, ttl: TtlLike | None, nx: bool, xx: bool) -> Cmd[bool]:
    if nx and xx:
        raise ValueError("nx and xx exclude each other")
    kind, data = encode_value(value)
    body = fc.encode_set_request(key_bytes(key), data, kind, ttl_ms(ttl), 1 if nx else 2 if xx else 0)
    return Cmd(Opcode.SET, body, False, 0, fc.decode_bool)


def delete(key: KeyLike) -> Cmd[bool]:
    return Cmd(Opcode.DEL, fc.encode_key_request(key_bytes(key)), False, 0, fc.decode_bool)


def exists(key: KeyLike) -> Cmd[bool]:
    return Cmd(Opcode.EXISTS, fc.encode_key_request(key_bytes(key)), True, 0, fc.decode_bool)


def incr(key: KeyLike, by: int) -> Cmd[int]:
    if isinstance(by, bool) or not isinstance(by, int):
        raise TypeError("by must be an int")
    return Cmd(Opcode.INCR, fc.encode_incr_request(key_bytes(key), by), False, 0, fc.decode_i64)


def expire(key: KeyLike, ttl: TtlLike) -> Cmd[bool]:
    body = m.ExpireRequest(key_bytes(key), parse_ttl_ms(ttl)).encode()
    return Cmd(Opcode.EXPIRE, body, False, 0, fc.decode_bool)


def persist(key: KeyLike) -> Cmd[bool]:
    return Cmd(Opcode.PERSIST, fc.encode_key_request(key_bytes(key)), False, 0, fc.decode_bool)


def pttl(key: KeyLike) -> Cmd[int]:
    return Cmd(Opcode.TTL, fc.encode_key_request(key_bytes(key)), True, 0, fc.decode_i64)


def cas(key: KeyLike, expected: Any, value: Any, ttl: TtlLike | None) -> Cmd[bool]:
    ekind, edata = (0, b"") if expected is None else encode_value(expected)
    kind, data = encode_value(value)
    req = m.CasRequest(key_bytes(key), edata, ekind, expected is None, data, kind, ttl_ms(ttl))
    return Cmd(Opcode.CAS, req.encode(), False, 0, lambda body: m.CasResponse.decode(body).applied)


def mget(keys: Iterable[KeyLike], default: Any, stale_ok: bool) -> Cmd[list[Any]]:
    def decode(body: bytes) -> list[Any]:
        resp = m.MGetResponse.decode(body)
        return [decode_value(e.kind, e.value) if e.found else default for e in resp.entries]

    req = m.MGetRequest([m.Key(key_bytes(k)) for k in keys])
    return Cmd(Opcode.MGET, req.encode(), True, consistency(stale_ok), decode)


def mset(mapping: KeyMapping, ttl: TtlLike | None) -> Cmd[None]:
    ms = ttl_ms(ttl)
    entries = []
    items: Iterable[tuple[KeyLike, Any]] = mapping.items()
    for k, v in items:
        kind, data = encode_value(v)
        entries.append(m.Entry(key=key_bytes(k), kind=kind, value=data, ttl_ms=ms))
    return Cmd(Opcode.MSET, m.MSetRequest(entries).encode(), False, 0, lambda body: None)


def scan_page(prefix: bytes, cursor: bytes, count: int, stale_ok: bool) -> Cmd[tuple[list[str], bytes]]:
    """One page of SCAN: (keys, next cursor; empty when done)."""

    def decode(body: bytes) -> tuple[list[str], bytes]:
        resp = m.ScanResponse.decode(body)
        return [k.key.decode("utf-8", "surrogateescape") for k in resp.keys], resp.next_cursor

    return Cmd(Opcode.SCAN, m.ScanRequest(prefix, cursor, count).encode(), True, consistency(stale_ok), decode)


def ping(payload: bytes) -> Cmd[bytes]:
    return Cmd(Opcode.PING, m.PingRequest(payload).encode(), True, 0, lambda body: m.PingResponse.decode(body).payload)


def info(section: str | None) -> Cmd[dict[str, Any]]:
    import json

    def decode(body: bytes) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(m.InfoResponse.decode(body).json)
        return result

    return Cmd(Opcode.INFO, m.InfoRequest(section or "").encode(), True, 0, decode)
