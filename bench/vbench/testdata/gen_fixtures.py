"""Generate frames with the Python reference codec (proto/python/vproto) for vbench's Go tests.

Run from the repo root:
    .venv/bin/python bench/vbench/testdata/gen_fixtures.py           # rewrite
    .venv/bin/python bench/vbench/testdata/gen_fixtures.py --check   # fail if stale (tests/bench runs this)

Writes bench/vbench/testdata/fixtures.json: a list of objects
    {"name", "message", "opcode", "flags", "fields": {...}, "body_hex", "frame_hex"}
Byte fields are given as hex in "<field>_hex"; strings and integers as-is.
Requests are checked by re-encoding in Go (byte equality); responses by decoding in Go.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "proto" / "python"))

from vproto.frame import Opcode, encode_frame  # noqa: E402
from vproto.messages import (  # noqa: E402
    ErrorResponse,
    GetResponse,
    HelloRequest,
    HelloResponse,
    IncrRequest,
    IncrResponse,
    KeyRequest,
    SetRequest,
    SetResponse,
)

RESP = 0x80


def fields_of(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, _slot, typ, _default in msg.SPEC:
        v = getattr(msg, attr)
        if typ == "bytes":
            out[attr + "_hex"] = bytes(v).hex()
        elif typ == "bool":
            out[attr] = bool(v)
        else:
            out[attr] = v
    return out


def vec(name: str, opcode: int, msg: Any, flags: int = 0) -> dict[str, Any]:
    body = msg.encode()
    return {
        "name": name,
        "message": type(msg).__name__,
        "opcode": opcode,
        "flags": flags,
        "fields": fields_of(msg),
        "body_hex": body.hex(),
        "frame_hex": encode_frame(opcode, flags, body).hex(),
    }


def build() -> list[dict[str, Any]]:
    """Every fixture, deterministically (fixed seed)."""
    rnd = random.Random(20050)
    out = []
    # HELLO
    out.append(vec("hello-empty", Opcode.HELLO, HelloRequest(1, "", "")))
    out.append(vec("hello-name", Opcode.HELLO, HelloRequest(1, "", "vbench")))
    out.append(vec("hello-token", Opcode.HELLO, HelloRequest(1, "s3cr3t-token-0123456789abcdef", "vbench")))
    out.append(vec("hello-token-only", Opcode.HELLO, HelloRequest(1, "t", "")))
    out.append(vec("hello-features", Opcode.HELLO, HelloRequest(1, "tok", "x", 1)))
    # GET (KeyRequest): every key length modulo alignment, plus the bench key shape
    for n in range(0, 19):
        key = bytes(rnd.randrange(256) for _ in range(n))
        out.append(vec(f"get-keylen-{n}", Opcode.GET, KeyRequest(key)))
    out.append(vec("get-benchkey", Opcode.GET, KeyRequest(b"key:000000012345")))
    out.append(vec("get-consistency-stale", Opcode.GET, KeyRequest(b"k"), flags=1))
    # SET
    for kl in (0, 1, 2, 3, 4, 5, 7, 16):
        for vl in (0, 1, 3, 4, 6, 64, 100):
            for kind, ttl, cond in ((0, 0, 0), (1, 0, 0), (0, 1500, 0), (0, 0, 1), (3, 60000, 2), (2, -7, 1)):
                key = bytes(rnd.randrange(256) for _ in range(kl))
                val = bytes(rnd.randrange(256) for _ in range(vl))
                out.append(
                    vec(
                        f"set-k{kl}-v{vl}-kind{kind}-ttl{ttl}-cond{cond}",
                        Opcode.SET,
                        SetRequest(key, val, kind, ttl, cond),
                    )
                )
    out.append(vec("set-benchkey-64", Opcode.SET, SetRequest(b"key:000000012345", b"x" * 64)))
    # INCR
    for kl in (0, 1, 2, 3, 4, 5, 8, 20):
        for delta in (1, 0, -1, 2, 1 << 40, -(1 << 63), (1 << 63) - 1):
            key = bytes(rnd.randrange(256) for _ in range(kl))
            out.append(vec(f"incr-k{kl}-d{delta}", Opcode.INCR, IncrRequest(key, delta)))
    out.append(vec("incr-benchkey", Opcode.INCR, IncrRequest(b"counter:000000012345", 1)))
    # Responses (decoded by Go)
    out.append(
        vec("resp-hello", Opcode.HELLO | RESP, HelloResponse(1, "0.1.0", "node-a", 0, 16 << 20, 4096, 1 << 20, 0))
    )
    for found, kind, val in (
        (False, 0, b""),
        (True, 0, b"x" * 64),
        (True, 1, b"abc"),
        (True, 0, b""),
        (True, 2, bytes(8)),
    ):
        out.append(vec(f"resp-get-{found}-{kind}-{len(val)}", Opcode.GET | RESP, GetResponse(found, kind, val)))
    out.append(vec("resp-set-true", Opcode.SET | RESP, SetResponse(True)))
    out.append(vec("resp-set-false", Opcode.SET | RESP, SetResponse(False)))
    for v in (0, 1, -1, 123456789, (1 << 63) - 1, -(1 << 63)):
        out.append(vec(f"resp-incr-{v}", Opcode.INCR | RESP, IncrResponse(v)))
    out.append(vec("resp-error", Opcode.ERROR, ErrorResponse(10, "value is not an integer", "", 0)))
    out.append(vec("resp-error-redirect", Opcode.ERROR, ErrorResponse(14, "not primary", "10.0.0.1:2005", 250)))
    return out


FIXTURES = Path(__file__).with_name("fixtures.json")


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv[1:]:
        # Fails when the Python codec's output drifted from what vbench's tests were given.
        if FIXTURES.read_text() != text:
            sys.exit(f"{FIXTURES} is stale: rerun {Path(__file__).name} without --check")
        print(f"{FIXTURES} is up to date")
        return
    FIXTURES.write_text(text)
    print(f"wrote {len(build())} vectors to {FIXTURES}")


if __name__ == "__main__":
    main()
