"""Issue 11, finding 5: the metrics port.

- Malformed HTTP requests get 400 and cost at most one short log line per
  interval (no traceback); the engine stays healthy.
- A scrape costs the request path little and never more under a flood:
  renders are coalesced (velocity_metrics_renders_total counts them), every
  reply is still fresh (rendered after the request arrived), and a render
  does not walk the data (its time does not grow with the number of keys).
- The bind address is configurable (the operator uses 0.0.0.0 in the pod).
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import threading
import time
from pathlib import Path

from tests.support.engine_proc import EngineProcess

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /metrics\r\n\r\n",
    b"GET /metrics HTTP/9.9\r\n\r\n",
    b"get /metrics HTTP/1.1\r\n\r\n",
    b"GET metrics HTTP/1.1\r\n\r\n",
    b"GET /\x00\x01 HTTP/1.1\r\n\r\n",
    b"\xff\xfe\xfd garbage \x00\r\n\r\n",
    b"GET /metrics HTTP/1.1 extra\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",  # head over the 8 KiB limit
]


def http_raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def sample(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_malformed_requests_get_400_and_a_quiet_log(engine: EngineProcess) -> None:
    log_before = engine.log_path.stat().st_size
    statuses: dict[bytes, int] = {}
    for i in range(1000):
        reply = http_raw(engine.metrics_port, MALFORMED[i % len(MALFORMED)])
        status = reply.split(b"\r\n", 1)[0]
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {b"HTTP/1.1 400 Bad Request": 1000}, statuses
    grown = engine.log_path.stat().st_size - log_before
    log_tail = engine.log_path.read_text(errors="replace")[log_before:]
    assert "Traceback" not in log_tail, log_tail[:2000]
    assert grown < 1000, f"the log grew by {grown} bytes for 1,000 bad requests:\n{log_tail[:2000]}"
    # Healthy: probes, a scrape that counts them, and the data port all answer.
    assert engine.http_status("/healthz") == 200
    assert engine.http_status("/readyz") == 200
    assert sample(engine.metrics(), "velocity_http_bad_requests_total") == 1000

    async def data_port() -> None:
        async with engine.pool() as pool:
            await pool.set("after", "bad-http")
            assert await pool.get("after") == "bad-http"

    asyncio.run(data_port())


def test_scrape_flood_is_coalesced_and_still_fresh(engine: EngineProcess) -> None:
    """8 threads scraping flat out for 2 s: renders stay <= 20/s, every scrape answers 200."""
    renders_before = sample(engine.metrics(), "velocity_metrics_renders_total")
    stop = time.monotonic() + 2.0
    counts: list[int] = []
    errors: list[BaseException] = []

    def scrape() -> None:
        n = 0
        try:
            while time.monotonic() < stop:
                status, body = engine.http_get("/metrics")
                assert status == 200 and b"velocity_requests_total" in body
                n += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
        counts.append(n)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert not errors, errors[0]
    renders = sample(engine.metrics(), "velocity_metrics_renders_total") - renders_before
    scrapes = sum(counts)
    assert scrapes >= 40, f"only {scrapes} scrapes answered in {elapsed:.1f}s"
    assert renders <= elapsed / 0.05 + 3, f"{renders:.0f} renders for {scrapes} scrapes in {elapsed:.1f}s"

    # Fresh, not cached: a scrape right after a request counts it.
    async def one_set(i: int) -> None:
        async with engine.pool(pool_size=1) as pool:
            await pool.set("fresh", i)

    for i in range(3):
        before = sample(engine.metrics(), 'velocity_requests_total{op="set"}')
        asyncio.run(one_set(i))
        assert sample(engine.metrics(), 'velocity_requests_total{op="set"}') == before + 1


def test_scrape_cost_does_not_grow_with_the_data(engine: EngineProcess) -> None:
    """Nothing in a render walks the keys: 200,000 keys scrape about as fast as none."""

    def scrape_ms() -> float:
        times = []
        for _ in range(15):
            t = time.perf_counter()
            engine.metrics()
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(0.06)  # past the coalescing interval: every scrape is its own render
        return statistics.median(times)

    empty = scrape_ms()

    async def load() -> None:
        async with engine.pool(pool_size=4) as pool:
            for base in range(0, 200_000, 2000):
                await pool.mset({f"key:{i:07d}": i for i in range(base, base + 2000)})

    asyncio.run(load())
    assert sample(engine.metrics(), "velocity_keys") == 200_000
    full = scrape_ms()
    assert full < 3 * empty + 5, f"scrape median {full:.2f} ms with 200k keys vs {empty:.2f} ms with none"


def test_metrics_bind_address_is_configurable(tmp_path: Path) -> None:
    """--metrics-host 0.0.0.0 (what the operator sets in the pod) binds every address; the default is loopback."""

    def bound(port: int) -> set[str]:
        addrs = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            ip_hex, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                addrs.add(socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]))
        return addrs

    with EngineProcess(tmp_path / "all", extra_args=["--metrics-host", "0.0.0.0"]) as eng:
        assert bound(eng.metrics_port) == {"0.0.0.0"}
        assert eng.http_status("/healthz") == 200
    with EngineProcess(tmp_path / "default") as eng:
        assert bound(eng.metrics_port) == {"127.0.0.1"}
