"""End to end on a real engine: the harness starts velocity-engine (TLS + token,
as users run it), drives it with the Go load generator and reads its CPU from
/proc. Needs Go to build bench/vbench (`make test-bench` ensures the build)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from velocity_bench.clients import Load
from velocity_bench.measure import measure
from velocity_bench.scenarios import SCENARIOS
from velocity_bench.servers import Server
from velocity_bench.tools import build_vbench


@pytest.fixture(scope="module")
def vbench() -> Path:
    return build_vbench()


@pytest.mark.parametrize("name", ["velocity-tls", "velocity-memory"])
def test_measure_a_real_engine(vbench: Path, tmp_path: Path, name: str) -> None:
    srv = Server(SCENARIOS[name], tmp_path, pin=None)
    try:
        srv.start()
        assert srv.persistence["tls"] is (name == "velocity-tls"), srv.persistence
        assert srv.persistence["appendfsync"] != "?", srv.persistence
        if name == "velocity-memory":
            assert srv.persistence["storage"] == "memory"
        # Enough requests that the server's CPU spans several clock ticks (/proc/PID/stat counts
        # in 10 ms units): 2,000 pipelined GETs took 13 ms and could read as 0 CPU.
        load = Load(connections=4, requests=50_000, value_size=16, keyspace=100, time_cap=30, client_pin=None)
        for test in ("set", "get", "incr"):
            cell = measure(srv, "vbench", load, test, pipeline=4)
            assert cell.ok, cell.error
            assert cell.run is not None and cell.run.completed == 50_000
            assert cell.server_cpu_s > 0 and cell.cpu_us_per_op > 0
            assert cell.run.latency_ms.p50 <= cell.run.latency_ms.p99 <= cell.run.latency_ms.max
    finally:
        srv.stop()
    assert srv.proc is not None and srv.proc.poll() is not None


def test_a_wrong_token_is_a_failed_cell(vbench: Path, tmp_path: Path) -> None:
    srv = Server(SCENARIOS["velocity-tls"], tmp_path, pin=None)
    try:
        srv.start()
        srv.token = "not-the-token"
        load = Load(connections=1, requests=10, value_size=8, keyspace=10, time_cap=10, client_pin=None)
        cell = measure(srv, "vbench", load, "get", pipeline=1)
        assert not cell.ok and cell.error
    finally:
        srv.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
