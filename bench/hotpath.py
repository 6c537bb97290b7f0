#!/usr/bin/env python3
"""CPU per request of the engine's Python path alone: no sockets, no event loop.

    .venv/bin/python bench/hotpath.py [--pipeline 16] [--storage memory|lsm]

Builds a real Server (with the chosen storage in a temporary directory) and a
Connection on a fake transport, then feeds it pre-encoded batches of
`pipeline` GET/SET/INCR frames, exactly as data_received() gets them from a
socket. Prints process CPU microseconds per request: the part of "server CPU
per op" that Python code costs (the rest is the kernel and uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from velocity_engine.config import EngineSettings
from velocity_engine.connection import Connection
from velocity_engine.server import Server
from vproto import fastcodec as fc
from vproto.frame import Opcode, encode_frame

BATCHES = 200


class NullTransport:
    """Just enough of asyncio.Transport for Connection: counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def batches(op: str, pipeline: int, keyspace: int, value: bytes) -> list[bytes]:
    rnd = random.Random(1)
    out = []
    for _ in range(BATCHES):
        frames = []
        for _ in range(pipeline):
            key = b"key:%012d" % rnd.randrange(keyspace)
            if op == "set":
                frames.append(encode_frame(Opcode.SET, 0, fc.encode_set_request(key, value)))
            elif op == "get":
                frames.append(encode_frame(Opcode.GET, 0, fc.encode_key_request(key)))
            else:
                frames.append(encode_frame(Opcode.INCR, 0, fc.encode_key_request(b"ctr:" + key)))
        out.append(b"".join(frames))
    return out


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="hotpath-"))
    settings = EngineSettings(data_dir=data_dir, insecure=True, storage=args.storage)
    server = Server(settings)
    conn = Connection(server)
    conn.connection_made(NullTransport())  # type: ignore[arg-type]
    value = b"x" * args.value_size
    for op in ("set", "get", "incr"):
        work = batches(op, args.pipeline, args.keyspace, value)
        for b in work:  # warm-up: keys exist, caches are hot
            conn.data_received(b)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.process_time()
            for _ in range(args.rounds):
                for b in work:
                    conn.data_received(b)
            best = min(best, time.process_time() - t0)
        n = args.rounds * BATCHES * args.pipeline
        print(f"{op.upper():4} P={args.pipeline}: {best / n * 1e6:.2f} µs CPU per request (best of {args.repeat})")
    server.storage.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--storage", choices=("memory", "lsm"), default="memory")
    ap.add_argument("--value-size", type=int, default=64)
    ap.add_argument("--keyspace", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    asyncio.run(run(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
