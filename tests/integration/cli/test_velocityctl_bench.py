"""`velocityctl bench` against a real engine (TLS + token): counts, percentiles,
the JSON shape, and that the load really reached the server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.engine_proc import EngineProcess


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("bench")) as e:
        yield e


def bench(eng: EngineProcess, *args: str) -> list[dict[str, object]]:
    r = eng.ctl("bench", "--json", *args, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return list(json.loads(r.stdout))


def test_every_op_completes_every_request(eng: EngineProcess) -> None:
    rows = bench(eng, "-n", "3000", "-c", "5", "-P", "8", "-d", "32", "-r", "100")
    assert [r["op"] for r in rows] == ["set", "get", "incr"]
    for r in rows:
        assert r["requests"] == 3000 and r["errors"] == 0, r
        assert float(r["ops_per_sec"]) > 0  # type: ignore[arg-type]
        assert 0 < float(r["p50_ms"]) <= float(r["p99_ms"]) <= float(r["p999_ms"])  # type: ignore[arg-type]


def test_incr_load_lands_exactly_on_the_server(eng: EngineProcess) -> None:
    # One key, many connections, pipelined: the counter must equal the number of requests.
    before = eng.ctl("get", "bench:ctr:00000000")
    start = int(before.stdout) if before.returncode == 0 else 0
    (row,) = bench(eng, "-t", "incr", "-n", "2500", "-c", "7", "-P", "16", "-r", "1")
    assert row["requests"] == 2500
    after = eng.ctl("get", "bench:ctr:00000000")
    assert int(after.stdout) == start + 2500


def test_set_values_have_the_requested_size(eng: EngineProcess) -> None:
    bench(eng, "-t", "set", "-n", "50", "-c", "1", "-d", "77", "-r", "1")
    got = eng.ctl("get", "bench:00000000")
    assert got.returncode == 0 and got.stdout.rstrip(b"\n") == b"x" * 77


def test_progress_goes_to_stderr_and_the_table_to_stdout(eng: EngineProcess) -> None:
    r = eng.ctl("bench", "-t", "get", "-n", "500", "-c", "2", timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("GET") and "ops/s" in lines[0] and "p999" in lines[0]


def test_bad_arguments_exit_2(eng: EngineProcess) -> None:
    r = eng.ctl("bench", "-t", "del")
    assert r.returncode == 2 and b"unknown bench operations" in r.stderr
    r = eng.ctl("bench", "-c", "0")
    assert r.returncode == 2
