"""Every V-Proto message body as a dataclass, with canonical encode/decode.

`encode()` drives the flatc-generated builder functions (vproto/fbs) in the
canonical order, which is the reference encoding: fields largest first, ties
in reverse declaration order (what flatc's C++ `CreateX` helpers do); byte
vectors are created in declaration order before the table and only when
non-empty. The hot-path codec (fastcodec.py) must produce identical bytes.

`decode()` reads untrusted bodies with the bounds-checked reader.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import flatbuffers

from vproto.errors import ProtocolError, UnknownOpcodeError
from vproto.frame import RESPONSE_BIT, Opcode
from vproto.reader import Table

# (attribute, slot, wire type, default). Wire types: bytes, str, bool, u8, u16,
# u32, u64, i64, or a Message subclass for a vector of tables.
FieldSpec = tuple[str, int, Any, Any]

_SIZE = {"bool": 1, "u8": 1, "u16": 2, "u32": 4, "u64": 8, "i64": 8, "bytes": 4, "str": 4}

M = TypeVar("M", bound="Message")


class Message:
    """Base of all bodies. Subclasses are dataclasses with a SPEC."""

    FB_NAME: ClassVar[str]
    SPEC: ClassVar[tuple[FieldSpec, ...]]
    _module: ClassVar[ModuleType | None] = None

    @classmethod
    def fb_module(cls) -> ModuleType:
        if cls._module is None:
            cls._module = importlib.import_module(f"vproto.fbs.{cls.FB_NAME}")
        return cls._module

    # -- encoding (reference, via generated code) ---------------------------

    def build(self, b: flatbuffers.Builder) -> int:
        mod = self.fb_module()
        offsets: dict[str, int] = {}
        for attr, _slot, typ, _default in self.SPEC:
            value = getattr(self, attr)
            if typ == "bytes" and value:
                offsets[attr] = b.CreateByteVector(bytes(value))
            elif typ == "str" and value:
                offsets[attr] = b.CreateString(value)
            elif isinstance(typ, type) and value:
                children = [child.build(b) for child in value]
                getattr(mod, f"Start{_camel(attr)}Vector")(b, len(children))
                for off in reversed(children):
                    b.PrependUOffsetTRelative(off)
                offsets[attr] = b.EndVector()
        mod.Start(b)
        for attr, _slot, typ, default in _canonical_order(self.SPEC):
            adder = getattr(mod, f"Add{_camel(attr)}")
            if attr in offsets:
                adder(b, offsets[attr])
            elif typ in ("bytes", "str") or isinstance(typ, type):
                continue
            else:
                value = getattr(self, attr)
                if value != default:
                    adder(b, value)
        end: int = mod.End(b)
        return end

    def encode(self) -> bytes:
        b = flatbuffers.Builder(64)
        b.Finish(self.build(b))
        return bytes(b.Output())

    # -- decoding (untrusted input) -----------------------------------------

    @classmethod
    def from_table(cls: type[M], t: Table) -> M:
        kwargs: dict[str, Any] = {}
        for attr, slot, typ, default in cls.SPEC:
            if typ == "bytes":
                kwargs[attr] = t.bytes(slot) or b""
            elif typ == "str":
                kwargs[attr] = t.string(slot)
            elif isinstance(typ, type):
                kwargs[attr] = [typ.from_table(sub) for sub in t.tables(slot)]  # type: ignore[attr-defined]
            else:
                kwargs[attr] = t.scalar(slot, typ, default)
        return cls(**kwargs)

    @classmethod
    def decode(cls: type[M], body: bytes) -> M:
        return cls.from_table(Table.root(body))


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _canonical_order(spec: tuple[FieldSpec, ...]) -> list[FieldSpec]:
    def size(f: FieldSpec) -> int:
        return 4 if isinstance(f[2], type) else _SIZE[f[2]]

    # sorted() is stable: reverse the declaration first so ties end up reversed.
    return sorted(reversed(spec), key=size, reverse=True)


def _check_spec(cls: type[Message]) -> type[Message]:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    assert names == [s[0] for s in cls.SPEC], f"{cls.__name__}: SPEC and fields disagree"
    return cls


# ---- handshake ------------------------------------------------------------


@_check_spec
@dataclass(slots=True)
class HelloRequest(Message):
    FB_NAME = "HelloRequest"
    protocol_version: int = 1
    token: str = ""
    client_name: str = ""
    features: int = 0
    SPEC = (
        ("protocol_version", 0, "u16", 0),
        ("token", 1, "str", ""),
        ("client_name", 2, "str", ""),
        ("features", 3, "u32", 0),
    )


@_check_spec
@dataclass(slots=True)
class HelloResponse(Message):
    FB_NAME = "HelloResponse"
    protocol_version: int = 1
    server_version: str = ""
    node_id: str = ""
    role: int = 0
    max_frame_bytes: int = 0
    max_key_bytes: int = 0
    max_value_bytes: int = 0
    features: int = 0
    SPEC = (
        ("protocol_version", 0, "u16", 0),
        ("server_version", 1, "str", ""),
        ("node_id", 2, "str", ""),
        ("role", 3, "u8", 0),
        ("max_frame_bytes", 4, "u64", 0),
        ("max_key_bytes", 5, "u32", 0),
        ("max_value_bytes", 6, "u32", 0),
        ("features", 7, "u32", 0),
    )


# ---- generic --------------------------------------------------------------


@_check_spec
@dataclass(slots=True)
class PingRequest(Message):
    FB_NAME = "PingRequest"
    payload: bytes = b""
    SPEC = (("payload", 0, "bytes", b""),)


@_check_spec
@dataclass(slots=True)
class PingResponse(Message):
    FB_NAME = "PingResponse"
    payload: bytes = b""
    SPEC = (("payload", 0, "bytes", b""),)


@_check_spec
@dataclass(slots=True)
class KeyRequest(Message):
    FB_NAME = "KeyRequest"
    key: bytes = b""
    SPEC = (("key", 0, "bytes", b""),)


@_check_spec
@dataclass(slots=True)
class BoolResponse(Message):
    FB_NAME = "BoolResponse"
    value: bool = False
    SPEC = (("value", 0, "bool", False),)


@_check_spec
@dataclass(slots=True)
class ErrorResponse(Message):
    FB_NAME = "ErrorResponse"
    code: int = 0
    message: str = ""
    primary: str = ""
    retry_after_ms: int = 0
    SPEC = (
        ("code", 0, "u16", 0),
        ("message", 1, "str", ""),
        ("primary", 2, "str", ""),
        ("retry_after_ms", 3, "u32", 0),
    )


# ---- single-key -----------------------------------------------------------


@_check_spec
@dataclass(slots=True)
class GetResponse(Message):
    FB_NAME = "GetResponse"
    found: bool = False
    kind: int = 0
    value: bytes = b""
    SPEC = (("found", 0, "bool", False), ("kind", 1, "u8", 0), ("value", 2, "bytes", b""))


@_check_spec
@dataclass(slots=True)
class SetRequest(Message):
    FB_NAME = "SetRequest"
    key: bytes = b""
    value: bytes = b""
    kind: int = 0
    ttl_ms: int = 0
    condition: int = 0
    SPEC = (
        ("key", 0, "bytes", b""),
        ("value", 1, "bytes", b""),
        ("kind", 2, "u8", 0),
        ("ttl_ms", 3, "i64", 0),
        ("condition", 4, "u8", 0),
    )


@_check_spec
@dataclass(slots=True)
class SetResponse(Message):
    FB_NAME = "SetResponse"
    applied: bool = False
    SPEC = (("applied", 0, "bool", False),)


@_check_spec
@dataclass(slots=True)
class IncrRequest(Message):
    FB_NAME = "IncrRequest"
    key: bytes = b""
    delta: int = 1
    SPEC = (("key", 0, "bytes", b""), ("delta", 1, "i64", 1))


@_check_spec
@dataclass(slots=True)
class IncrResponse(Message):
    FB_NAME = "IncrResponse"
    value: int = 0
    SPEC = (("value", 0, "i64", 0),)


@_check_spec
@dataclass(slots=True)
class ExpireRequest(Message):
    FB_NAME = "ExpireRequest"
    key: bytes = b""
    ttl_ms: int = 0
    SPEC = (("key", 0, "bytes", b""), ("ttl_ms", 1, "i64", 0))


@_check_spec
@dataclass(slots=True)
class TtlResponse(Message):
    FB_NAME = "TtlResponse"
    ttl_ms: int = 0
    SPEC = (("ttl_ms", 0, "i64", 0),)


@_check_spec
@dataclass(slots=True)
class CasRequest(Message):
    FB_NAME = "CasRequest"
    key: bytes = b""
    expected: bytes = b""
    expected_kind: int = 0
    expect_absent: bool = False
    value: bytes = b""
    kind: int = 0
    ttl_ms: int = 0
    SPEC = (
        ("key", 0, "bytes", b""),
        ("expected", 1, "bytes", b""),
        ("expected_kind", 2, "u8", 0),
        ("expect_absent", 3, "bool", False),
        ("value", 4, "bytes", b""),
        ("kind", 5, "u8", 0),
        ("ttl_ms", 6, "i64", 0),
    )


@_check_spec
@dataclass(slots=True)
class CasResponse(Message):
    FB_NAME = "CasResponse"
    applied: bool = False
    found: bool = False
    kind: int = 0
    value: bytes = b""
    SPEC = (
        ("applied", 0, "bool", False),
        ("found", 1, "bool", False),
        ("kind", 2, "u8", 0),
        ("value", 3, "bytes", b""),
    )


# ---- multi-key ------------------------------------------------------------


@_check_spec
@dataclass(slots=True)
class Key(Message):
    FB_NAME = "Key"
    key: bytes = b""
    SPEC = (("key", 0, "bytes", b""),)


@_check_spec
@dataclass(slots=True)
class Entry(Message):
    FB_NAME = "Entry"
    key: bytes = b""
    found: bool = False
    kind: int = 0
    value: bytes = b""
    ttl_ms: int = 0
    SPEC = (
        ("key", 0, "bytes", b""),
        ("found", 1, "bool", False),
        ("kind", 2, "u8", 0),
        ("value", 3, "bytes", b""),
        ("ttl_ms", 4, "i64", 0),
    )


@_check_spec
@dataclass(slots=True)
class MGetRequest(Message):
    FB_NAME = "MGetRequest"
    keys: list[Key] = field(default_factory=list)
    SPEC = (("keys", 0, Key, None),)


@_check_spec
@dataclass(slots=True)
class MGetResponse(Message):
    FB_NAME = "MGetResponse"
    entries: list[Entry] = field(default_factory=list)
    SPEC = (("entries", 0, Entry, None),)


@_check_spec
@dataclass(slots=True)
class MSetRequest(Message):
    FB_NAME = "MSetRequest"
    entries: list[Entry] = field(default_factory=list)
    SPEC = (("entries", 0, Entry, None),)


@_check_spec
@dataclass(slots=True)
class ScanRequest(Message):
    FB_NAME = "ScanRequest"
    prefix: bytes = b""
    cursor: bytes = b""
    count: int = 0
    SPEC = (("prefix", 0, "bytes", b""), ("cursor", 1, "bytes", b""), ("count", 2, "u32", 0))


@_check_spec
@dataclass(slots=True)
class ScanResponse(Message):
    FB_NAME = "ScanResponse"
    keys: list[Key] = field(default_factory=list)
    next_cursor: bytes = b""
    SPEC = (("keys", 0, Key, None), ("next_cursor", 1, "bytes", b""))


@_check_spec
@dataclass(slots=True)
class InfoRequest(Message):
    FB_NAME = "InfoRequest"
    section: str = ""
    SPEC = (("section", 0, "str", ""),)


@_check_spec
@dataclass(slots=True)
class InfoResponse(Message):
    FB_NAME = "InfoResponse"
    json: str = ""
    SPEC = (("json", 0, "str", ""),)


# ---- snapshot transfer --------------------------------------------------------


@_check_spec
@dataclass(slots=True)
class SnapshotBeginRequest(Message):
    FB_NAME = "SnapshotBeginRequest"
    SPEC = ()


@_check_spec
@dataclass(slots=True)
class SnapshotBeginResponse(Message):
    FB_NAME = "SnapshotBeginResponse"
    snapshot_id: str = ""
    created_ms: int = 0
    SPEC = (("snapshot_id", 0, "str", ""), ("created_ms", 1, "u64", 0))


@_check_spec
@dataclass(slots=True)
class SnapshotReadRequest(Message):
    FB_NAME = "SnapshotReadRequest"
    snapshot_id: str = ""
    offset: int = 0
    max_bytes: int = 0
    SPEC = (("snapshot_id", 0, "str", ""), ("offset", 1, "u64", 0), ("max_bytes", 2, "u32", 0))


@_check_spec
@dataclass(slots=True)
class SnapshotReadResponse(Message):
    FB_NAME = "SnapshotReadResponse"
    ready: bool = False
    size: int = 0
    data: bytes = b""
    SPEC = (("ready", 0, "bool", False), ("size", 1, "u64", 0), ("data", 2, "bytes", b""))


# ---- replication (docs/formats/replication.md) ------------------------------


@_check_spec
@dataclass(slots=True)
class EpochStart(Message):
    FB_NAME = "EpochStart"
    epoch: int = 0
    start_seq: int = 0
    SPEC = (("epoch", 0, "u64", 0), ("start_seq", 1, "u64", 0))


@_check_spec
@dataclass(slots=True)
class ReplSyncRequest(Message):
    FB_NAME = "ReplSyncRequest"
    node_id: str = ""
    endpoint: str = ""
    epoch: int = 0
    seq: int = 0
    full: bool = False
    node_epoch: int = 0
    stream_version: int = 0  # 0 (absent) means version 1, what the Python engine speaks
    SPEC = (
        ("node_id", 0, "str", ""),
        ("endpoint", 1, "str", ""),
        ("epoch", 2, "u64", 0),
        ("seq", 3, "u64", 0),
        ("full", 4, "bool", False),
        ("node_epoch", 5, "u64", 0),
        ("stream_version", 6, "u16", 0),
    )


@_check_spec
@dataclass(slots=True)
class ReplSyncResponse(Message):
    FB_NAME = "ReplSyncResponse"
    full: bool = False
    epoch: int = 0
    seq: int = 0
    history: list[EpochStart] = field(default_factory=list)
    node_id: str = ""
    stream_version: int = 0
    SPEC = (
        ("full", 0, "bool", False),
        ("epoch", 1, "u64", 0),
        ("seq", 2, "u64", 0),
        ("history", 3, EpochStart, None),
        ("node_id", 4, "str", ""),
        ("stream_version", 5, "u16", 0),
    )


@_check_spec
@dataclass(slots=True)
class ReplSnapshot(Message):
    FB_NAME = "ReplSnapshot"
    records: bytes = b""
    last: bool = False
    SPEC = (("records", 0, "bytes", b""), ("last", 1, "bool", False))


@_check_spec
@dataclass(slots=True)
class ReplBatches(Message):
    FB_NAME = "ReplBatches"
    batches: bytes = b""
    SPEC = (("batches", 0, "bytes", b""),)


@_check_spec
@dataclass(slots=True)
class ReplHeartbeat(Message):
    FB_NAME = "ReplHeartbeat"
    epoch: int = 0
    seq: int = 0
    time_ms: int = 0
    SPEC = (("epoch", 0, "u64", 0), ("seq", 1, "u64", 0), ("time_ms", 2, "u64", 0))


@_check_spec
@dataclass(slots=True)
class ReplAck(Message):
    FB_NAME = "ReplAck"
    seq: int = 0
    SPEC = (("seq", 0, "u64", 0),)


@_check_spec
@dataclass(slots=True)
class PromoteRequest(Message):
    FB_NAME = "PromoteRequest"
    min_epoch: int = 0
    SPEC = (("min_epoch", 0, "u64", 0),)


@_check_spec
@dataclass(slots=True)
class PromoteResponse(Message):
    FB_NAME = "PromoteResponse"
    epoch: int = 0
    seq: int = 0
    SPEC = (("epoch", 0, "u64", 0), ("seq", 1, "u64", 0))


@_check_spec
@dataclass(slots=True)
class ReplicaOfRequest(Message):
    FB_NAME = "ReplicaOfRequest"
    primary: str = ""
    epoch: int = 0
    SPEC = (("primary", 0, "str", ""), ("epoch", 1, "u64", 0))


@_check_spec
@dataclass(slots=True)
class ReplicaOfResponse(Message):
    FB_NAME = "ReplicaOfResponse"
    epoch: int = 0
    SPEC = (("epoch", 0, "u64", 0),)


# Opcode -> (request body, response body).
BODIES: dict[int, tuple[type[Message], type[Message]]] = {
    Opcode.HELLO: (HelloRequest, HelloResponse),
    Opcode.PING: (PingRequest, PingResponse),
    Opcode.INFO: (InfoRequest, InfoResponse),
    Opcode.GET: (KeyRequest, GetResponse),
    Opcode.SET: (SetRequest, SetResponse),
    Opcode.DEL: (KeyRequest, BoolResponse),
    Opcode.EXISTS: (KeyRequest, BoolResponse),
    Opcode.INCR: (IncrRequest, IncrResponse),
    Opcode.EXPIRE: (ExpireRequest, BoolResponse),
    Opcode.PERSIST: (KeyRequest, BoolResponse),
    Opcode.TTL: (KeyRequest, TtlResponse),
    Opcode.CAS: (CasRequest, CasResponse),
    Opcode.MGET: (MGetRequest, MGetResponse),
    Opcode.MSET: (MSetRequest, BoolResponse),
    Opcode.SCAN: (ScanRequest, ScanResponse),
    Opcode.SNAPSHOT_BEGIN: (SnapshotBeginRequest, SnapshotBeginResponse),
    Opcode.SNAPSHOT_READ: (SnapshotReadRequest, SnapshotReadResponse),
    # Replication: stream frames (SNAPSHOT, BATCHES, HEARTBEAT, ACK) get no
    # reply; their "response" type is listed only so body_type() knows them.
    Opcode.REPL_SYNC: (ReplSyncRequest, ReplSyncResponse),
    Opcode.REPL_SNAPSHOT: (ReplSnapshot, ReplSnapshot),
    Opcode.REPL_BATCHES: (ReplBatches, ReplBatches),
    Opcode.REPL_HEARTBEAT: (ReplHeartbeat, ReplHeartbeat),
    Opcode.REPL_ACK: (ReplAck, ReplAck),
    Opcode.PROMOTE: (PromoteRequest, PromoteResponse),
    Opcode.REPLICA_OF: (ReplicaOfRequest, ReplicaOfResponse),
}


def body_type(opcode: int) -> type[Message]:
    """The body class of a frame with this opcode (request or response)."""
    if opcode == Opcode.ERROR:
        return ErrorResponse
    pair = BODIES.get(opcode & ~RESPONSE_BIT)
    if pair is None:
        raise UnknownOpcodeError(f"unknown opcode 0x{opcode:02x}")
    return pair[1] if opcode & RESPONSE_BIT else pair[0]


def decode_body(opcode: int, body: bytes) -> Message:
    try:
        return body_type(opcode).decode(body)
    except (ProtocolError, UnknownOpcodeError):
        raise
    except (ValueError, TypeError, IndexError) as exc:  # defensive: never crash on input
        raise ProtocolError(f"malformed body for opcode 0x{opcode:02x}: {exc}") from None
