#!/usr/bin/env python3
"""GET latency for keys that live in SSTables: bloom "maybe" (present) and bloom "no" (absent).

Loads `--keys` keys (`key:%012d` of the even numbers 0, 2, 4, ..., 64-byte
values, in random order so that every table spans the whole key range) into
a real `velocity-engine` (Python data plane, see restart.engine_cmd) with a small `--memtable-bytes`, has the
last memtable flushed (SNAPSHOT_BEGIN) and every pending compaction finish,
checks `velocityctl info`-style storage stats (memtable empty, all keys in
tables), then restarts the engine (empty block cache) and measures with one
closed-loop connection (one request in flight):

1. `present, cold`: random even keys: a bloom "maybe" in the table holding
   the key, an index search and a block read (block cache empty; the OS
   page cache is not dropped, that needs root);
2. `present, warm`: keys drawn from a hot set of `--hot-keys` keys whose
   blocks were read once before (they fit in the 32 MiB block cache);
3. `absent`: random odd keys: inside every table's key range, so every
   table's bloom filter is asked and (but for false positives) says no.

The client is a small synchronous Python loop over a raw socket (V-Proto
frames from vproto; RESP for Redis), not vbench: vbench draws keys at random
from one range and cannot tell present from absent requests. Redis (no
persistence) is loaded with the same keys and measured with the same loop,
its passes alternating with Velocity's, so its numbers are the scale: a
large part of each sample is this client and the loopback round trip.
Bloom counters come from the engine's /metrics, block cache hits/misses
from INFO, as deltas over each pass.

    .venv/bin/python bench/table_reads.py                          # 1M keys, 20k samples per pass
    .venv/bin/python bench/table_reads.py --keys 20000 --samples 500 --json-out -   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# bench/ is the script's directory, so on sys.path: the engine-process helpers live in restart.py.
from restart import KEY_FORMAT, BenchError, Engine, flush_memtable, free_port, load_keys, running, wait_until
from vproto.fastcodec import decode_get_response, encode_key_request
from vproto.frame import HEADER, HEADER_SIZE, RESPONSE_BIT, TRAILER_SIZE, Opcode, encode_frame, make_flags

FANOUT = 4  # storage/compaction.py: a tier with this many tables is about to be merged


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise BenchError("server closed the connection")
        buf += chunk
    return bytes(buf)


class VelocityGet:
    """GET over V-Proto on a plaintext (--insecure) engine: one frame out, one frame back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.flags = make_flags()

    def __call__(self, key: bytes) -> bool:
        self.sock.sendall(encode_frame(Opcode.GET, self.flags, encode_key_request(key)))
        _magic, opcode, _flags, n = HEADER.unpack(_recv_exact(self.sock, HEADER_SIZE))
        body = _recv_exact(self.sock, n + TRAILER_SIZE)[:n]
        if opcode != Opcode.GET | RESPONSE_BIT:
            raise BenchError(f"GET answered with opcode {opcode:#x}")
        return decode_get_response(body)[0]

    def close(self) -> None:
        self.sock.close()


class RedisGet:
    """GET over RESP: the same loop shape as VelocityGet."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def __call__(self, key: bytes) -> bool:
        self.sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key))
        line = self.rfile.readline()
        if line.startswith(b"$-1"):
            return False
        if not line.startswith(b"$"):
            raise BenchError(f"redis GET answered {line!r}")
        self.rfile.read(int(line[1:]) + 2)
        return True

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


@dataclass
class Pass:
    server: str
    name: str
    samples: int
    found: int
    ops_per_sec: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    metrics: dict[str, float]


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def measure(server: str, name: str, get: Callable[[bytes], bool], keys: list[bytes],
            metrics: Callable[[], dict[str, float]] | None = None) -> Pass:
    before = metrics() if metrics else {}
    lat: list[int] = []
    found = 0
    clock = time.perf_counter_ns
    t0 = clock()
    for k in keys:
        s = clock()
        found += get(k)
        lat.append(clock() - s)
    elapsed = (clock() - t0) / 1e9
    after = metrics() if metrics else {}
    lat.sort()
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    return Pass(server, name, len(keys), found, round(len(keys) / elapsed), percentile(lat, 0.5),
                percentile(lat, 0.9), percentile(lat, 0.99), percentile(lat, 0.999), lat[-1] / 1000.0, delta)


def storage_metrics(engine: Engine) -> dict[str, float]:
    """Bloom counters from /metrics (prometheus names, labels folded in); block cache from INFO."""
    out = {}
    for name, value in engine.metrics().items():
        if name.startswith("velocity_bloom_") and not name.endswith("_created"):
            out[name.replace('{result="', ":").replace('"}', "")] = value
    cache = engine.info()["storage"].get("block_cache", {})
    out["block_cache_hits"] = float(cache.get("hits", 0))
    out["block_cache_misses"] = float(cache.get("misses", 0))
    return out


# -- Redis --------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise BenchError("redis-server is not installed: run `make bench-deps`, or pass --no-redis")
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(data),
         "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        def up() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return True
            return False

        wait_until(up, 30, "redis-server", interval=0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def redis_load(port: int, numbers: list[int], value_bytes: int, batch: int = 200) -> None:
    blob = random.Random(1).randbytes(value_bytes + 4096)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        rfile = sock.makefile("rb")
        for i in range(0, len(numbers), batch):
            chunk = numbers[i : i + batch]
            parts = [b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * len(chunk))]
            for n in chunk:
                key = (KEY_FORMAT % n).encode()
                val = blob[n % 4096 : n % 4096 + value_bytes]
                parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(key), key, len(val), val))
            sock.sendall(b"".join(parts))
            line = rfile.readline()
            if line != b"+OK\r\n":
                raise BenchError(f"redis MSET answered {line!r}")
        rfile.close()


# -- the run ------------------------------------------------------------------------------------


def settled(engine: Engine) -> bool:
    """Nothing left to flush and no tier about to be compacted."""
    st = engine.info()["storage"]
    tiers = st.get("tiers", {})
    return int(st.get("immutable_memtables", 1)) == 0 and all(t["tables"] < FANOUT for t in tiers.values())


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    present = [2 * i for i in range(args.keys)]
    rng = random.Random(args.seed)
    hit_keys = [(KEY_FORMAT % rng.choice(present)).encode() for _ in range(args.samples)]
    hot = [(KEY_FORMAT % rng.choice(present)).encode() for _ in range(args.hot_keys)]
    hot_keys = [rng.choice(hot) for _ in range(args.samples)]
    load_order = present[:]
    rng.shuffle(load_order)
    miss_keys = [(KEY_FORMAT % (2 * rng.randrange(args.keys) + 1)).encode() for _ in range(args.samples)]
    loads = [loadavg()]
    passes: list[Pass] = []
    engine = Engine(workdir / "velocity", ["--appendfsync", "everysec", "--memtable-bytes", str(args.memtable_bytes)])
    with contextlib.ExitStack() as stack:
        stack.enter_context(running(engine))
        engine.start()
        load_s = load_keys(engine, load_order, args.value_bytes)
        flush_memtable(engine)
        wait_until(lambda: settled(engine), 1800, "flushes and compactions to finish", interval=0.5)
        rget: RedisGet | None = None
        if not args.no_redis:
            # Loaded now and left running, so its passes alternate with Velocity's under the same noise.
            port = stack.enter_context(redis_server(workdir))
            redis_load(port, load_order, args.value_bytes)
            rget = RedisGet(port)
            stack.callback(rget.close)
        engine.kill()  # everything is in tables: nothing to lose, and the block cache starts empty
        engine.start()
        info = engine.info()
        st = info["storage"]
        layout = {k: st.get(k) for k in ("memtable_bytes", "sstables", "sstable_bytes", "tiers", "flushes",
                                         "compactions", "wal_bytes")}
        if int(st["memtable_bytes"]) != 0 or int(info["keys"]) != args.keys:
            raise BenchError(f"expected {args.keys} keys all in tables, got keys={info['keys']} {layout}")
        get = VelocityGet(engine.port)
        stack.callback(get.close)
        loads.append(loadavg())

        def vpass(name: str, keys: list[bytes]) -> None:
            passes.append(measure("velocity", name, get, keys, lambda: storage_metrics(engine)))

        vpass("present, cold", hit_keys)
        if rget is not None:
            passes.append(measure("redis", "present", rget, hit_keys))
        for k in hot:  # read each hot key's block once
            get(k)
        vpass("present, warm", hot_keys)
        vpass("absent", miss_keys)
        if rget is not None:
            passes.append(measure("redis", "absent", rget, miss_keys))
        loads.append(loadavg())
    for p in passes:
        expect = p.samples if p.name.startswith("present") else 0
        if p.found != expect:
            raise BenchError(f"{p.server} {p.name}: {p.found} of {p.samples} found, expected {expect}")
    return {"keys": args.keys, "value_bytes": args.value_bytes, "memtable_bytes": args.memtable_bytes,
            "load_s": round(load_s, 1), "layout": layout, "load_avg": loads,
            "passes": [asdict(p) for p in passes]}


def render(res: dict[str, Any]) -> str:
    rows = ["| server | keys | samples | ops/s (1 conn) | p50 µs | p90 µs | p99 µs | p99.9 µs | bloom no | "
            "bloom maybe | false pos. | block cache hits / misses |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in res["passes"]:
        m = p["metrics"]
        bloom = [str(int(m[k])) if k in m else "-" for k in ("velocity_bloom_checks_total:negative",
                                                            "velocity_bloom_checks_total:maybe",
                                                            "velocity_bloom_false_positives_total")]
        cache = "-"
        if "block_cache_hits" in m:
            cache = f"{int(m['block_cache_hits'])} / {int(m['block_cache_misses'])}"
        rows.append(f"| {p['server']} | {p['name']} | {p['samples']:,} | {p['ops_per_sec']:,} | {p['p50_us']:.0f} | "
                    f"{p['p90_us']:.0f} | {p['p99_us']:.0f} | {p['p999_us']:.0f} | {' | '.join(bloom)} | {cache} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys loaded [1,000,000]")
    ap.add_argument("--value-bytes", type=int, default=64, help="value size [64]")
    ap.add_argument("--memtable-bytes", type=int, default=4 * 1024 * 1024, help="engine --memtable-bytes [4 MiB]")
    ap.add_argument("--samples", type=int, default=20_000, help="GETs per pass [20,000]")
    ap.add_argument("--hot-keys", type=int, default=2000, help="keys the warm pass draws from [2,000]")
    ap.add_argument("--seed", type=int, default=1, help="key sampling seed [1]")
    ap.add_argument("--no-redis", action="store_true", help="skip the Redis passes")
    ap.add_argument("--workdir", type=Path, help="where data goes [a temp dir, removed]")
    ap.add_argument("--json-out", help="write results as JSON here ('-' for stdout)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like an exception, so the `finally` blocks kill the engines (own sessions).
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="velocity-reads-")))
        workdir.mkdir(parents=True, exist_ok=True)
        res = run(args, workdir)
    res["command"] = "bench/table_reads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(res), file=sys.stderr)
    print(f"layout: {json.dumps(res['layout'])}; load average: {res['load_avg']}", file=sys.stderr)
    text = json.dumps(res, indent=1)
    if args.json_out == "-":
        print(text)
    elif args.json_out:
        Path(args.json_out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
