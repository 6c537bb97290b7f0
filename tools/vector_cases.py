"""The canonical V-Proto test vectors (rendered to proto/vectors/ by generate.py).

Every SDK reads these files: it must decode each valid frame to the listed
fields, encode the fields back to exactly `body_hex`/`frame_hex` when it uses
the canonical encoder, and reject each invalid frame with the listed error.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import fields as dc_fields
from typing import Any

from vproto import messages as m
from vproto.frame import HEADER, MAGIC, RESPONSE_BIT, TRAILER, Opcode, encode_frame, make_flags
from vproto.values import encode_int

R = RESPONSE_BIT


def _fields(msg: m.Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dc_fields(msg):  # type: ignore[arg-type]
        v = getattr(msg, f.name)
        if isinstance(v, bytes):
            out[f.name] = v.hex()
        elif isinstance(v, list):
            out[f.name] = [_fields(x) for x in v]
        elif isinstance(v, bool):
            out[f.name] = v
        elif isinstance(v, int):
            # 64-bit values do not survive JSON numbers in every language: strings.
            out[f.name] = str(v) if abs(v) > 2**53 else v
        else:
            out[f.name] = v
    return out


VALID: list[tuple[str, str, int, int, m.Message]] = [
    ("hello-request", "HELLO with protocol 1, a token and zstd support", Opcode.HELLO, 0,
     m.HelloRequest(1, "s3cr3t-token-0123456789", "sdk-test", 1)),
    ("hello-response", "HELLO reply from a primary", Opcode.HELLO | R, 0,
     m.HelloResponse(1, "0.1.0", "a1b2c3d4e5f60718", 0, 16 * 1024 * 1024, 65536, 8 * 1024 * 1024, 1)),
    ("ping-request-empty", "PING with an empty body (every field default)", Opcode.PING, 0, m.PingRequest()),
    ("ping-request", "PING with a payload", Opcode.PING, 0, m.PingRequest(b"hi")),
    ("ping-response", "PING reply echoing the payload", Opcode.PING | R, 0, m.PingResponse(b"hi")),
    ("get-request", "GET session:0xF1", Opcode.GET, 0, m.KeyRequest(b"session:0xF1")),
    ("get-request-stale", "GET with the stale-read-allowed consistency flag", Opcode.GET,
     make_flags(consistency=1), m.KeyRequest(b"user:1")),
    ("get-response-json", "GET reply: JSON document {\"active\":true}", Opcode.GET | R, 0,
     m.GetResponse(True, 3, b'{"active":true}')),
    ("get-response-bytes", "GET reply: Bytes kind (0) is the default and omitted", Opcode.GET | R, 0,
     m.GetResponse(True, 0, b"\x00\x01\x02")),
    ("get-response-missing", "GET reply for a missing key", Opcode.GET | R, 0, m.GetResponse()),
    ("set-request", "SET a string, no TTL", Opcode.SET, 0, m.SetRequest(b"greeting", b"hello", 1)),
    ("set-request-ttl-nx", "SET JSON with a 2 h TTL, only if absent", Opcode.SET, 0,
     m.SetRequest(b"session:0xF1", b'{"active":true}', 3, 7_200_000, 1)),
    ("set-request-int", "SET an Int (8 bytes little-endian), only if present", Opcode.SET, 0,
     m.SetRequest(b"n", encode_int(-42), 2, 0, 2)),
    ("set-response-applied", "SET reply: written", Opcode.SET | R, 0, m.SetResponse(True)),
    ("set-response-not-applied", "SET reply: condition failed", Opcode.SET | R, 0, m.SetResponse(False)),
    ("del-request", "DEL a key", Opcode.DEL, 0, m.KeyRequest(b"greeting")),
    ("bool-response-true", "DEL/EXISTS/EXPIRE/PERSIST/MSET reply: true", Opcode.DEL | R, 0, m.BoolResponse(True)),
    ("exists-request", "EXISTS a key", Opcode.EXISTS, 0, m.KeyRequest(b"greeting")),
    ("incr-request-default", "INCR by 1: delta is the default and omitted", Opcode.INCR, 0,
     m.IncrRequest(b"counters:req_total", 1)),
    ("incr-request-negative", "DECRBY 5 is INCR with delta -5", Opcode.INCR, 0, m.IncrRequest(b"c", -5)),
    ("incr-request-max", "INCRBY 2^63-1", Opcode.INCR, 0, m.IncrRequest(b"c", 2**63 - 1)),
    ("incr-response", "INCR reply: new value 1", Opcode.INCR | R, 0, m.IncrResponse(1)),
    ("incr-response-min", "INCR reply: -2^63", Opcode.INCR | R, 0, m.IncrResponse(-(2**63))),
    ("expire-request", "EXPIRE in 30 s", Opcode.EXPIRE, 0, m.ExpireRequest(b"k", 30_000)),
    ("persist-request", "PERSIST", Opcode.PERSIST, 0, m.KeyRequest(b"k")),
    ("ttl-request", "TTL", Opcode.TTL, 0, m.KeyRequest(b"k")),
    ("ttl-response-missing", "TTL reply: -2, no such key", Opcode.TTL | R, 0, m.TtlResponse(-2)),
    ("ttl-response", "TTL reply: 1500 ms left", Opcode.TTL | R, 0, m.TtlResponse(1500)),
    ("cas-request", "CAS: replace \"v1\" (String) by \"v2\"", Opcode.CAS, 0,
     m.CasRequest(b"k", b"v1", 1, False, b"v2", 1, 0)),
    ("cas-request-absent", "CAS: create only if absent, 10 s TTL", Opcode.CAS, 0,
     m.CasRequest(b"lock", b"", 0, True, b"owner-1", 1, 10_000)),
    ("cas-response-conflict", "CAS reply: not applied, current value returned", Opcode.CAS | R, 0,
     m.CasResponse(False, True, 1, b"v9")),
    ("mget-request", "MGET two keys", Opcode.MGET, 0, m.MGetRequest([m.Key(b"a"), m.Key(b"b")])),
    ("mget-response", "MGET reply: a found (Int 7), b missing", Opcode.MGET | R, 0,
     m.MGetResponse([m.Entry(b"a", True, 2, encode_int(7)), m.Entry(b"b")])),
    ("mset-request", "MSET two entries, one with a TTL", Opcode.MSET, 0,
     m.MSetRequest([m.Entry(b"a", False, 1, b"x"), m.Entry(b"b", False, 0, b"\xff", 5000)])),
    ("scan-request", "SCAN prefix user: from the start, 100 per page", Opcode.SCAN, 0,
     m.ScanRequest(b"user:", b"", 100)),
    ("scan-request-cursor", "SCAN continuing after user:2", Opcode.SCAN, 0, m.ScanRequest(b"user:", b"user:2", 2)),
    ("scan-response", "SCAN reply: a page with more to come", Opcode.SCAN | R, 0,
     m.ScanResponse([m.Key(b"user:1"), m.Key(b"user:2")], b"user:2")),
    ("snapshot-begin-request", "SNAPSHOT_BEGIN: start a point-in-time snapshot", Opcode.SNAPSHOT_BEGIN, 0,
     m.SnapshotBeginRequest()),
    ("snapshot-begin-response", "SNAPSHOT_BEGIN reply: the snapshot's id and instant", Opcode.SNAPSHOT_BEGIN | R, 0,
     m.SnapshotBeginResponse("9f2c4e1a7b3d5c60", 1764213600000)),
    ("snapshot-read-request", "SNAPSHOT_READ 1 MiB at offset 4 MiB", Opcode.SNAPSHOT_READ, 0,
     m.SnapshotReadRequest("9f2c4e1a7b3d5c60", 4194304, 1048576)),
    ("snapshot-read-response-pending", "SNAPSHOT_READ reply: not written yet", Opcode.SNAPSHOT_READ | R, 0,
     m.SnapshotReadResponse()),
    ("snapshot-read-response", "SNAPSHOT_READ reply: the first 8 bytes of a 4096-byte file",
     Opcode.SNAPSHOT_READ | R, 0, m.SnapshotReadResponse(True, 4096, b"VSNAPSH1")),
    ("info-request", "INFO, all sections", Opcode.INFO, 0, m.InfoRequest()),
    ("info-response", "INFO reply (JSON text)", Opcode.INFO | R, 0, m.InfoResponse('{"keys":1}')),
    ("error-auth-failed", "ERROR AUTH_FAILED (6)", Opcode.ERROR, 0, m.ErrorResponse(6, "invalid token")),
    ("error-redirect", "ERROR REDIRECT (14) naming the primary", Opcode.ERROR, 0,
     m.ErrorResponse(14, "not the primary", "vdb://alpha-0.alpha-headless:2005", 50)),
    # Replication (docs/formats/replication.md).
    ("repl-sync-request", "REPL_SYNC from a replica at (epoch 1, seq 812) that has seen epoch 2",
     Opcode.REPL_SYNC, 0, m.ReplSyncRequest("b7e1c0a9d2f34e15", "vdb://alpha-1.alpha-headless:2005", 1, 812,
                                            False, 2)),
    ("repl-sync-response", "REPL_SYNC reply: resume after 812; epoch 2 began at 800",
     Opcode.REPL_SYNC | R, 0, m.ReplSyncResponse(False, 2, 812, [m.EpochStart(1, 1), m.EpochStart(2, 800)],
                                                 "a1b2c3d4e5f60718")),
    ("repl-snapshot", "REPL_SNAPSHOT: the last chunk of a full copy, one put (k=v, Bytes, no expiry)",
     Opcode.REPL_SNAPSHOT, 0, m.ReplSnapshot(bytes.fromhex("010000006b010000000000000000000100000076"), True)),
    ("repl-batches", "REPL_BATCHES: batch (epoch 2, seq 813) deleting key k",
     Opcode.REPL_BATCHES, 0, m.ReplBatches(bytes.fromhex(
         "0200000000000000" "2d03000000000000" "00149cc29a010000" "01000000" "010000006b00"))),
    ("repl-heartbeat", "REPL_HEARTBEAT: primary of epoch 2 at seq 813", Opcode.REPL_HEARTBEAT, 0,
     m.ReplHeartbeat(2, 813, 1764201600000)),
    ("repl-ack", "REPL_ACK: the replica holds 813 durably", Opcode.REPL_ACK, 0, m.ReplAck(813)),
    ("promote-request", "PROMOTE with no minimum epoch", Opcode.PROMOTE, 0, m.PromoteRequest()),
    ("promote-response", "PROMOTE reply: primary of epoch 3 at seq 813", Opcode.PROMOTE | R, 0,
     m.PromoteResponse(3, 813)),
    ("replica-of-request", "REPLICA_OF: follow alpha-1, which is in epoch 3", Opcode.REPLICA_OF, 0,
     m.ReplicaOfRequest("vdb://alpha-1.alpha-headless:2005", 3)),
    ("replica-of-response", "REPLICA_OF reply: the node is now in epoch 3", Opcode.REPLICA_OF | R, 0,
     m.ReplicaOfResponse(3)),
    ("error-not-enough-replicas", "ERROR NOT_ENOUGH_REPLICAS (20)", Opcode.ERROR, 0,
     m.ErrorResponse(20, "sync replication needs 1 replica(s) to acknowledge writes and 0 are connected")),
]


def _raw_frame(opcode: int, flags: int, body: bytes, *, magic: bytes = MAGIC, crc_delta: int = 0,
               length: int | None = None) -> bytes:
    head = HEADER.pack(magic, opcode, flags, len(body) if length is None else length)
    crc = (zlib.crc32(body, zlib.crc32(head)) + crc_delta) & 0xFFFFFFFF
    return head + body + TRAILER.pack(crc)


_GET = m.KeyRequest(b"k").encode()

INVALID: list[tuple[str, str, bytes, str]] = [
    ("bad-magic", "magic is VELP instead of VELO", _raw_frame(Opcode.GET, 0, _GET, magic=b"VELP"), "PROTOCOL"),
    ("bad-crc", "CRC off by one", _raw_frame(Opcode.GET, 0, _GET, crc_delta=1), "BAD_CRC"),
    ("reserved-flags", "flag bit 7 set", _raw_frame(Opcode.GET, 0x80, _GET), "PROTOCOL"),
    ("unknown-opcode", "opcode 0x7E is not assigned", _raw_frame(0x7E, 0, b""), "UNKNOWN_OPCODE"),
    ("truncated-table", "body cut to 6 bytes: the root offset points past the end",
     _raw_frame(Opcode.GET, 0, _GET[:6]), "PROTOCOL"),
    ("vector-past-end", "the key's length says 1000 bytes",
     _raw_frame(Opcode.GET, 0, _GET[:-8] + struct.pack("<I", 1000) + _GET[-4:]), "PROTOCOL"),
    ("too-large", "header declares a 2^40-byte body (beyond any limit)",
     HEADER.pack(MAGIC, Opcode.GET, 0, 2**40), "FRAME_TOO_LARGE"),
]


def render_all() -> dict[str, str]:
    valid = []
    for name, desc, opcode, flags, msg in VALID:
        body = msg.encode()
        valid.append({
            "name": name,
            "description": desc,
            "opcode": opcode,
            "flags": flags,
            "message": type(msg).FB_NAME,
            "fields": _fields(msg),
            "body_hex": body.hex(),
            "frame_hex": encode_frame(opcode, flags, body).hex(),
        })
    invalid = [
        {"name": n, "description": d, "frame_hex": f.hex(), "error": e} for n, d, f, e in INVALID
    ]
    doc = {
        "protocol_version": 1,
        "spec": "docs/formats/protocol.md",
        "notes": "bytes fields are lowercase hex; 64-bit integers beyond 2^53 are decimal strings",
        "valid": valid,
        "invalid": invalid,
    }
    return {"frames.json": json.dumps(doc, indent=2) + "\n"}
