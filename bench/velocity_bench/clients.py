"""The load generators: vbench (V-Proto, or RESP against Redis) and redis-benchmark.

Both are run the same way (batch of P requests per connection written at
once, then all P replies read), and both report per-request latency from the
batch write to that reply, so their percentiles mean the same thing.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

from velocity_bench.paths import VBENCH_BIN
from velocity_bench.servers import Server


class ClientError(RuntimeError):
    """A load generator failed or printed something that could not be parsed."""


@dataclass(frozen=True)
class Load:
    connections: int
    requests: int
    value_size: int
    keyspace: int
    time_cap: float
    client_pin: str | None


@dataclass
class Latency:
    """Milliseconds."""

    avg: float
    min: float
    p50: float
    p95: float
    p99: float
    p999: float
    max: float


@dataclass
class Run:
    """What one load generator run reports."""

    completed: int
    ops_per_sec: float
    elapsed_s: float
    latency_ms: Latency
    errors: int = 0
    first_error: str = ""
    time_capped: bool = False
    extra: dict[str, int] = field(default_factory=dict)


def pinned(cmd: list[str], pin: str | None) -> list[str]:
    return ["taskset", "-c", pin, *cmd] if pin is not None else cmd


def vbench_command(srv: Server, load: Load, test: str, pipeline: int, proto: str, requests: int) -> list[str]:
    cmd = [
        str(VBENCH_BIN), "-h", "127.0.0.1", "-p", str(srv.port), "-c", str(load.connections), "-n", str(requests),
        "-P", str(pipeline), "-d", str(load.value_size), "-r", str(load.keyspace), "-t", test,
        "--duration", f"{load.time_cap}s", "--json", "-", "-q", "--proto", proto,
    ]  # fmt: skip
    if srv.scenario.tls:
        if srv.ca is None:
            raise ClientError(f"{srv.scenario.name}: TLS without a CA file")
        tok = srv.workdir / "client-token"
        tok.write_text(srv.token)
        cmd += ["--ca", str(srv.ca), "--token-file", str(tok)]
    elif proto == "vproto":
        cmd += ["--insecure"]
    return cmd


def run_vbench(
    srv: Server, load: Load, test: str, pipeline: int, proto: str = "vproto", requests: int | None = None
) -> Run:
    cmd = vbench_command(srv, load, test, pipeline, proto, requests or load.requests)
    try:
        proc = subprocess.run(pinned(cmd, load.client_pin), capture_output=True, text=True, timeout=load.time_cap + 60)
    except subprocess.TimeoutExpired:
        raise ClientError(f"vbench exceeded {load.time_cap + 60:.0f}s") from None
    return parse_vbench(proc.stdout, proc.returncode, proc.stderr)


def parse_vbench(stdout: str, returncode: int, stderr: str = "") -> Run:
    try:
        rep = json.loads(stdout)
        t = rep["tests"][0]
        lat = t["latency_ms"]
        return Run(
            completed=int(t["completed"]),
            ops_per_sec=float(t["ops_per_sec"]),
            elapsed_s=float(t["elapsed_s"]),
            latency_ms=Latency(**{k: float(lat[k]) for k in ("avg", "min", "p50", "p95", "p99", "p999", "max")}),
            errors=int(t["error_replies"]) + int(t["protocol_errors"]) + int(t["connection_errors"]),
            first_error=str(t.get("first_error", "")),
            time_capped=bool(t["time_capped"]),
            extra={k: int(t[k]) for k in ("get_hits", "get_misses") if k in t},
        )
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        raise ClientError(f"vbench failed (exit {returncode}): {stderr.strip()[-800:]}") from None


_PCT = re.compile(r"^\s*([\d.]+)% <= ([\d.]+) milliseconds")


def parse_redis_benchmark(text: str) -> Run:
    """Parse redis-benchmark 7 output (run with --precision 3, without -q/--csv)."""
    text = text.replace("\r", "\n")
    m = re.search(r"(\d+) requests completed in ([\d.]+) seconds", text)
    rps = re.search(r"throughput summary: ([\d.]+) requests per second", text)
    summ = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.\s]+)", text)
    if not (m and rps and summ):
        raise ClientError(f"cannot parse redis-benchmark output:\n{text[-1500:]}")
    avg, mn, p50, p95, p99, mx = (float(x) for x in summ.group(1).split()[:6])
    # Its summary has no p99.9: take the smallest latency whose cumulative share
    # is >= 99.9% from the distributions it prints (an upper-bound estimate).
    points = sorted((float(mm.group(2)), float(mm.group(1))) for mm in map(_PCT.match, text.splitlines()) if mm)
    p999 = next((lat for lat, pct in points if pct >= 99.9), mx)
    return Run(
        completed=int(m.group(1)),
        elapsed_s=float(m.group(2)),
        ops_per_sec=float(rps.group(1)),
        latency_ms=Latency(avg=avg, min=mn, p50=p50, p95=p95, p99=p99, p999=p999, max=mx),
    )


def redis_benchmark_command(srv: Server, load: Load, test: str, pipeline: int) -> list[str]:
    cmd = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port), "-c", str(load.connections),
        "-n", str(load.requests), "-P", str(pipeline), "-d", str(load.value_size), "-r", str(load.keyspace),
        "-t", test, "--precision", "3",
    ]  # fmt: skip
    if srv.scenario.tls:
        cmd += ["--tls", "--cacert", str(srv.ca), "--sni", "127.0.0.1", "-a", srv.token]
    return cmd


def run_redis_benchmark(srv: Server, load: Load, test: str, pipeline: int) -> Run:
    cmd = redis_benchmark_command(srv, load, test, pipeline)
    try:
        proc = subprocess.run(pinned(cmd, load.client_pin), capture_output=True, text=True, timeout=load.time_cap + 60)
    except subprocess.TimeoutExpired:
        raise ClientError(f"redis-benchmark exceeded {load.time_cap + 60:.0f}s") from None
    if proc.returncode != 0:
        raise ClientError(f"redis-benchmark exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    run = parse_redis_benchmark(proc.stdout)
    if "error" in proc.stderr.lower():
        run.first_error = proc.stderr.strip()[-300:]
    return run
