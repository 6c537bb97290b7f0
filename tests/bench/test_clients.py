"""Parsing what the load generators print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from velocity_bench.clients import ClientError, parse_redis_benchmark, parse_vbench

DATA = Path(__file__).parent / "testdata"


def test_redis_benchmark_output_is_parsed() -> None:
    run = parse_redis_benchmark((DATA / "redis-benchmark-set.txt").read_text())
    assert run.completed == 2000
    assert run.ops_per_sec == pytest.approx(32786.89)
    lat = run.latency_ms
    assert (lat.avg, lat.min, lat.p50, lat.p95, lat.p99, lat.max) == (0.109, 0.024, 0.079, 0.271, 0.647, 1.247)
    # p99.9: the first printed point at or above 99.9% (99.902% <= 1.223 ms)
    assert lat.p999 == 1.223


def test_redis_benchmark_garbage_is_an_error() -> None:
    with pytest.raises(ClientError, match="cannot parse"):
        parse_redis_benchmark("Could not connect to Redis at 127.0.0.1:1: Connection refused\n")


def _vbench_json(**over: object) -> str:
    test = {
        "test": "SET", "completed": 1000, "ops_per_sec": 5000.5, "elapsed_s": 0.2,
        "latency_ms": {"avg": 1.0, "min": 0.1, "p50": 0.9, "p95": 2.0, "p99": 3.0, "p999": 4.0, "max": 5.0},
        "error_replies": 0, "protocol_errors": 0, "connection_errors": 0, "time_capped": False,
    }  # fmt: skip
    test.update(over)
    return json.dumps({"tests": [test]})


def test_vbench_json_is_parsed() -> None:
    run = parse_vbench(_vbench_json(), 0)
    assert (run.completed, run.ops_per_sec, run.latency_ms.p999, run.errors) == (1000, 5000.5, 4.0, 0)


def test_vbench_errors_are_summed() -> None:
    run = parse_vbench(_vbench_json(error_replies=2, connection_errors=1, first_error="WRONG_TYPE"), 2)
    assert run.errors == 3
    assert run.first_error == "WRONG_TYPE"


def test_vbench_failure_carries_stderr() -> None:
    with pytest.raises(ClientError, match="TLS handshake"):
        parse_vbench("", 5, "vbench: TLS handshake failed")
