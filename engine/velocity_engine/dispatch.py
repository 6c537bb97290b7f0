"""Request handlers: decode a body, run the command, encode the reply frame.

One method per opcode, looked up in a 256-entry table. Handlers raise
VelocityError subclasses for anything the client did wrong; the connection
turns those into ERROR frames. Hot opcodes use vproto.fastcodec.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vproto import fastcodec as fc
from vproto import messages as m
from vproto.errors import (
    AuthFailedError,
    InvalidArgumentError,
    KeyTooLargeError,
    NoAuthError,
    PermissionDeniedError,
    UnknownOpcodeError,
    UnsupportedVersionError,
    ValueTooLargeError,
    VelocityError,
)
from vproto.frame import (
    COMPRESSION_THRESHOLD,
    FEATURE_ZSTD,
    HEADER,
    MAGIC,
    PROTOCOL_VERSION,
    RESPONSE_BIT,
    TRAILER,
    Compression,
    Opcode,
    compress_body,
    decompress_body,
    flag_compression,
    validate_flags,
)
from vproto.values import ValueKind

from velocity_engine import __version__
from velocity_engine.auth import EVERYTHING, PERMISSIONS, UNAUTHENTICATED, Role
from velocity_engine.gc_policy import apply_gc_policy
from velocity_engine.keyspace import Keyspace
from velocity_engine.storage.base import Record

if TYPE_CHECKING:
    from velocity_engine.server import Server

_pack_head = HEADER.pack
_pack_crc = TRAILER.pack
_crc32 = zlib.crc32
_ZSTD_FLAG = Compression.ZSTD << 2


# Hot-path handlers take the body and return the whole reply frame.
FastHandler = Callable[[bytes], bytes]


@dataclass(slots=True)
class Session:
    """Per-connection protocol state."""

    authed: bool = False
    zstd: bool = False
    client_name: str = ""
    # The credential's role (None before HELLO and with --insecure) and the opcodes it
    # may run: a 256-entry table (auth.PERMISSIONS), one index per request.
    role: Role | None = None
    allowed: bytes = UNAUTHENTICATED
    # Once authenticated: the fast handlers this session may use (Dispatcher.fast).
    fast: list[FastHandler | None] | None = None
    # The Connection, for handlers that turn it into a stream (replication).
    conn: Any = None


def frame(opcode: int, body: bytes, flags: int = 0) -> bytes:
    head = _pack_head(MAGIC, opcode, flags, len(body))
    return b"".join((head, body, _pack_crc(_crc32(body, _crc32(head)))))


def error_frame(exc: VelocityError) -> bytes:
    return frame(
        Opcode.ERROR,
        m.ErrorResponse(int(exc.code), exc.message[:1024], exc.primary, exc.retry_after_ms).encode(),
    )


# A handler returns the reply body, or None when it sent nothing to reply
# (replication stream frames: REPL_SYNC writes its own reply, REPL_ACK has none).
Handler = Callable[[Session, bytes], bytes | None]
# Replies that never vary, framed once (header and CRC included).
_SET_APPLIED_FRAME = frame(Opcode.SET | RESPONSE_BIT, fc.SET_APPLIED)
_SET_NOT_APPLIED_FRAME = frame(Opcode.SET | RESPONSE_BIT, fc.SET_NOT_APPLIED)
_GET_NOT_FOUND_FRAME = frame(Opcode.GET | RESPONSE_BIT, fc.GET_NOT_FOUND)
_GET_REPLY = Opcode.GET | RESPONSE_BIT
_INCR_REPLY = Opcode.INCR | RESPONSE_BIT


class Dispatcher:
    def __init__(self, server: Server) -> None:
        apply_gc_policy()  # the request path allocates per write: see gc_policy.py
        self.server = server
        self.ks: Keyspace = server.keyspace
        s = server.settings
        self.max_key = s.max_key_bytes
        self.max_value = s.max_value_bytes
        self.max_body = s.max_frame_bytes
        self.auth_required = not s.insecure
        self.table: list[Handler | None] = [None] * 256
        for op in Opcode:
            fn = getattr(self, f"op_{op.name.lower()}", None)
            if fn is not None:
                self.table[op] = fn
        # GET/SET/INCR without flags on an authenticated session need none of
        # handle()'s generic checks: the connection calls these directly (via
        # Session.fast) and they return whole reply frames, prebuilt where the
        # reply never varies (docs/benchmarks.md: what this buys). A session
        # that accepts zstd replies skips fast GET: its reply may need compressing.
        # The connection uses them only while role_check is None (a primary).
        self.fast: list[FastHandler | None] = [None] * 256
        self.fast[Opcode.GET] = self._fast_get
        self.fast[Opcode.SET] = self._fast_set
        self.fast[Opcode.INCR] = self._fast_incr
        self.fast_zstd = list(self.fast)
        self.fast_zstd[Opcode.GET] = None
        # Set on a replica (replication): redirects writes and linearizable reads.
        self.role_check: Callable[[int, int], None] | None = None
        server.replication.install(self)

    # Called by the connection for every frame that does not take the fast
    # path (see `fast`). Returns the reply frame.
    def handle(self, session: Session, opcode: int, flags: int, body: bytes) -> bytes:
        if flags:
            validate_flags(flags)
        fn = self.table[opcode]
        if fn is None:
            raise UnknownOpcodeError(f"unknown opcode 0x{opcode:02x}")
        if not session.allowed[opcode]:
            self._refuse(session, opcode)
        if flags and flag_compression(flags):
            # Only after the permission check, and never before login: a small
            # compressed frame must not turn into megabytes for a stranger.
            if not session.authed:
                raise NoAuthError("compressed frames are accepted only after a successful HELLO")
            body = decompress_body(body, self.max_body)
        if self.role_check is not None:
            self.role_check(opcode, flags)
        reply = fn(session, body)
        if reply is None:
            return b""
        if session.zstd and len(reply) > COMPRESSION_THRESHOLD:
            return frame(opcode | RESPONSE_BIT, compress_body(reply), _ZSTD_FLAG)
        return frame(opcode | RESPONSE_BIT, reply)

    def open_session(self, session: Session) -> None:
        """A new connection's session: with --insecure it may run everything at once."""
        if not self.auth_required:
            session.authed = True
            session.allowed = EVERYTHING
            session.fast = self.fast

    def _refuse(self, session: Session, opcode: int) -> None:
        name = _opcode_name(opcode)
        if not session.authed:
            raise NoAuthError(f"send HELLO with a valid token before {name}")
        role = session.role.value if session.role is not None else "this"
        raise PermissionDeniedError(f"the {role} token may not run {name} (see docs/security.md: roles)")

    # -- hot path: same checks and results as op_get/op_set/op_incr, fewer calls --

    def _fast_get(self, body: bytes) -> bytes:
        key = fc.decode_key_request(body)
        if not key or len(key) > self.max_key:
            self._key(key)  # raises the precise error
        rec = self.ks.lookup(key)
        if rec is None:
            return _GET_NOT_FOUND_FRAME
        return frame(_GET_REPLY, fc.encode_get_response(True, rec.kind, rec.value))

    def _fast_set(self, body: bytes) -> bytes:
        key, value, kind, ttl_ms, cond = fc.decode_set_request(body)
        if not key or len(key) > self.max_key:
            self._key(key)
        if len(value) > self.max_value or kind == ValueKind.INT:
            self._value(value, kind)
        if self.ks.set(key, kind, value, ttl_ms, cond):
            return _SET_APPLIED_FRAME
        return _SET_NOT_APPLIED_FRAME

    def _fast_incr(self, body: bytes) -> bytes:
        key, delta = fc.decode_incr_request(body)
        if not key or len(key) > self.max_key:
            self._key(key)
        return frame(_INCR_REPLY, fc.encode_incr_response(self.ks.incr(key, delta)))

    # -- checks ---------------------------------------------------------------

    def _key(self, key: bytes) -> bytes:
        if not key:
            raise InvalidArgumentError("key must not be empty")
        if len(key) > self.max_key:
            raise KeyTooLargeError(f"key of {len(key)} bytes exceeds the limit of {self.max_key}")
        return key

    def _value(self, value: bytes, kind: int = 0) -> bytes:
        if len(value) > self.max_value:
            raise ValueTooLargeError(f"value of {len(value)} bytes exceeds the limit of {self.max_value}")
        if kind == ValueKind.INT and len(value) != 8:
            # An Int is exactly 8 bytes (protocol.md, "Values"); storing anything
            # else would make a later INCR or GET fail far from the cause.
            raise InvalidArgumentError(f"an Int value must be 8 bytes, got {len(value)}")
        return value

    # -- handshake and admin -----------------------------------------------

    def op_hello(self, session: Session, body: bytes) -> bytes:
        req = m.HelloRequest.decode(body)
        if req.protocol_version != PROTOCOL_VERSION:
            raise UnsupportedVersionError(
                f"client speaks protocol {req.protocol_version}; this server speaks {PROTOCOL_VERSION}"
            )
        creds = self.server.credentials
        if creds is not None:
            role = creds.role_of(req.token)
            if role is None:
                self.server.stats.auth_failures += 1
                raise AuthFailedError("invalid token")
            session.role = role
            session.allowed = PERMISSIONS[role]
        session.authed = True
        session.zstd = bool(req.features & FEATURE_ZSTD)
        session.client_name = req.client_name[:128]
        session.fast = self._fast_table(session)
        return m.HelloResponse(
            protocol_version=PROTOCOL_VERSION,
            server_version=__version__,
            node_id=self.server.node_id,
            role=0 if self.server.replication.is_primary else 1,
            max_frame_bytes=self.max_body,
            max_key_bytes=self.max_key,
            max_value_bytes=self.max_value,
            features=FEATURE_ZSTD if session.zstd else 0,
        ).encode()

    def _fast_table(self, session: Session) -> list[FastHandler | None] | None:
        """The fast handlers (GET, SET, INCR) if this session's role may run all of them."""
        if session.role in (None, Role.CLIENT, Role.ADMIN):
            return self.fast_zstd if session.zstd else self.fast
        return None  # read-only and replication sessions take handle()'s checked path

    def op_ping(self, session: Session, body: bytes) -> bytes:
        return m.PingResponse(m.PingRequest.decode(body).payload).encode()

    def op_info(self, session: Session, body: bytes) -> bytes:
        section = m.InfoRequest.decode(body).section
        info = self.server.info()
        if section:
            if section not in info:
                raise InvalidArgumentError(f"no INFO section {section!r}; have {', '.join(sorted(info))}")
            info = {section: info[section]}
        return m.InfoResponse(json.dumps(info, separators=(",", ":"))).encode()

    # -- single key ------------------------------------------------------------

    def op_get(self, session: Session, body: bytes) -> bytes:
        rec = self.ks.lookup(self._key(fc.decode_key_request(body)))
        if rec is None:
            return fc.GET_NOT_FOUND
        return fc.encode_get_response(True, rec.kind, rec.value)

    def op_set(self, session: Session, body: bytes) -> bytes:
        key, value, kind, ttl_ms, cond = fc.decode_set_request(body)
        applied = self.ks.set(self._key(key), kind, self._value(value, kind), ttl_ms, cond)
        return fc.SET_APPLIED if applied else fc.SET_NOT_APPLIED

    def op_del(self, session: Session, body: bytes) -> bytes:
        return fc.BOOL_TRUE if self.ks.delete(self._key(fc.decode_key_request(body))) else fc.BOOL_FALSE

    def op_exists(self, session: Session, body: bytes) -> bytes:
        return fc.BOOL_TRUE if self.ks.exists(self._key(fc.decode_key_request(body))) else fc.BOOL_FALSE

    def op_incr(self, session: Session, body: bytes) -> bytes:
        key, delta = fc.decode_incr_request(body)
        return fc.encode_incr_response(self.ks.incr(self._key(key), delta))

    def op_expire(self, session: Session, body: bytes) -> bytes:
        req = m.ExpireRequest.decode(body)
        return fc.BOOL_TRUE if self.ks.expire(self._key(req.key), req.ttl_ms) else fc.BOOL_FALSE

    def op_persist(self, session: Session, body: bytes) -> bytes:
        return fc.BOOL_TRUE if self.ks.persist(self._key(fc.decode_key_request(body))) else fc.BOOL_FALSE

    def op_ttl(self, session: Session, body: bytes) -> bytes:
        return m.TtlResponse(self.ks.ttl(self._key(fc.decode_key_request(body)))).encode()

    def op_cas(self, session: Session, body: bytes) -> bytes:
        r = m.CasRequest.decode(body)
        applied, cur = self.ks.cas(
            self._key(r.key),
            r.expected,
            r.expected_kind,
            r.expect_absent,
            self._value(r.value, r.kind),
            r.kind,
            r.ttl_ms,
        )
        if applied or cur is None:
            return m.CasResponse(applied=applied).encode()
        return m.CasResponse(applied=False, found=True, kind=cur.kind, value=cur.value).encode()

    # -- multi key ---------------------------------------------------------------

    def op_mget(self, session: Session, body: bytes) -> bytes:
        keys = [self._key(k.key) for k in m.MGetRequest.decode(body).keys]
        recs = self.ks.mget(keys)
        size = sum(len(k) + MGET_ENTRY_OVERHEAD for k in keys) + sum(len(r.value) for r in recs if r is not None)
        if size > self.max_body:
            # Refused before encoding: a reply is never larger than a frame (protocol.md, MGET).
            raise InvalidArgumentError(
                f"MGET of {len(keys)} keys would reply with about {size} bytes, over the frame limit of "
                f"{self.max_body}: ask for fewer keys per request"
            )
        return m.MGetResponse([_entry(k, r) for k, r in zip(keys, recs, strict=True)]).encode()

    def op_mset(self, session: Session, body: bytes) -> bytes:
        entries = m.MSetRequest.decode(body).entries
        if not entries:
            raise InvalidArgumentError("MSET needs at least one entry")
        self.ks.mset([(self._key(e.key), e.kind, self._value(e.value, e.kind), e.ttl_ms) for e in entries])
        return fc.BOOL_TRUE

    def op_scan(self, session: Session, body: bytes) -> bytes:
        req = m.ScanRequest.decode(body)
        # A page also ends (with a cursor) before its reply would pass half the frame limit.
        keys, cursor = self.ks.scan(req.prefix, req.cursor, req.count, self.max_body // 2)
        return m.ScanResponse([m.Key(k) for k in keys], cursor).encode()

    # -- snapshots (storage/snapshot_exporter.py) --------------------------------

    def op_snapshot_begin(self, session: Session, body: bytes) -> bytes:
        m.SnapshotBeginRequest.decode(body)
        job = self.server.snapshots.begin_or_raise()
        return m.SnapshotBeginResponse(job.id, int(job.created_ms)).encode()

    def op_snapshot_read(self, session: Session, body: bytes) -> bytes:
        req = m.SnapshotReadRequest.decode(body)
        ready, size, data = self.server.snapshots.read_or_raise(req.snapshot_id, req.offset, req.max_bytes)
        return m.SnapshotReadResponse(ready, size, data).encode()


# Bytes an MGET reply entry adds beyond its key and value (table, vtable, vector headers, padding).
MGET_ENTRY_OVERHEAD = 64


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode 0x{opcode:02x}"


def _entry(key: bytes, rec: Record | None) -> m.Entry:
    if rec is None:
        return m.Entry(key=key)
    return m.Entry(key=key, found=True, kind=rec.kind, value=rec.value)
