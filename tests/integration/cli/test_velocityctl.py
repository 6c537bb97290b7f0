"""velocityctl as users run it: a real process against a real engine, checking output and exit codes.

Exit codes (pinned): 0 success, 1 "not found" (get/ttl of a missing key), 2 any
other error with one line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine_proc import CTL, EngineProcess, free_port


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("ctl")) as e:
        yield e


def out(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def one_line_error(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("velocityctl: "), r.stderr
    return lines[0]


def test_ping(eng: EngineProcess) -> None:
    assert out(eng.ctl("ping")).startswith("PONG ")


def test_set_get_with_types_and_conditions(eng: EngineProcess) -> None:
    assert out(eng.ctl("set", "s", "hello world")) == "OK\n"
    assert out(eng.ctl("get", "s")) == "hello world\n"
    assert out(eng.ctl("set", "j", '{"active": true}', "--type", "json")) == "OK\n"
    assert json.loads(out(eng.ctl("get", "j"))) == {"active": True}
    assert out(eng.ctl("set", "i", "41", "--type", "int")) == "OK\n"
    assert out(eng.ctl("incr", "i")) == "42\n"
    assert out(eng.ctl("set", "s", "other", "--nx")) == "NOT SET\n"
    assert out(eng.ctl("set", "absent", "x", "--xx")) == "NOT SET\n"


def test_get_missing_prints_nothing_and_exits_1(eng: EngineProcess) -> None:
    r = eng.ctl("get", "no-such-key")
    assert (r.returncode, r.stdout, r.stderr) == (1, b"", b"")


def test_incr_decr(eng: EngineProcess) -> None:
    assert out(eng.ctl("incr", "c")) == "1\n"
    assert out(eng.ctl("incr", "c", "10")) == "11\n"
    assert out(eng.ctl("incr", "c", "-1")) == "10\n"
    assert out(eng.ctl("decr", "c", "15")) == "-5\n"


def test_ttl_expire_persist(eng: EngineProcess) -> None:
    out(eng.ctl("set", "t", "v", "--ttl", "2h"))
    assert 7190 < float(out(eng.ctl("ttl", "t"))) <= 7200
    assert out(eng.ctl("persist", "t")) == "1\n"
    assert out(eng.ctl("ttl", "t")) == "-1\n"
    assert out(eng.ctl("expire", "t", "90s")) == "1\n"
    assert 85 < float(out(eng.ctl("ttl", "t"))) <= 90
    assert eng.ctl("ttl", "missing").returncode == 1
    assert out(eng.ctl("expire", "missing", "1s")) == "0\n"


def test_del_exists(eng: EngineProcess) -> None:
    out(eng.ctl("set", "d", "v"))
    assert out(eng.ctl("exists", "d")) == "1\n"
    assert out(eng.ctl("del", "d")) == "1\n"
    assert out(eng.ctl("del", "d")) == "0\n"
    assert out(eng.ctl("exists", "d")) == "0\n"


def test_scan_prefix_in_order(eng: EngineProcess) -> None:
    for k in ("user:3", "user:1", "user:2", "usr:9"):
        out(eng.ctl("set", k, "x"))
    assert out(eng.ctl("scan", "user:")) == "user:1\nuser:2\nuser:3\n"


def test_info_text_and_json(eng: EngineProcess) -> None:
    info = json.loads(out(eng.ctl("info", "--json")))
    assert info["server"]["tls"] is True and info["keys"] >= 0
    assert "keys:" in out(eng.ctl("info"))


def test_errors_exit_2_with_one_line(eng: EngineProcess, tmp_path: Path) -> None:
    out(eng.ctl("set", "word", "abc"))
    assert "NOT_INTEGER" in one_line_error(eng.ctl("incr", "word"))
    bad = tmp_path / "bad-token"
    bad.write_text("wrong\n")
    r = subprocess.run([CTL, "--endpoint", eng.endpoint, "--ca", str(eng.ca), "--token-file", str(bad), "ping"],
                       capture_output=True, env=_clean_env())
    assert "AUTH_FAILED" in one_line_error(r)
    r = subprocess.run([CTL, "--endpoint", f"vdb://127.0.0.1:{free_port()}", "--insecure", "ping"],
                       capture_output=True, env=_clean_env())
    one_line_error(r)
    r = subprocess.run([CTL, "--endpoint", eng.endpoint, "--token-file", str(eng.token_file), "ping"],
                       capture_output=True, env=_clean_env())  # no --ca: the system store does not know our CA
    assert "certificate" in one_line_error(r).lower()
    assert "TTL" in one_line_error(eng.ctl("set", "x", "y", "--ttl", "soon"))


def test_environment_variables(eng: EngineProcess) -> None:
    env = {**_clean_env(), "VDB_ENDPOINT": eng.endpoint, "VDB_CA": str(eng.ca), "VDB_TOKEN": eng.token}
    r = subprocess.run([CTL, "set", "env", "ok"], capture_output=True, env=env)
    assert out(r) == "OK\n"
    env = {**_clean_env(), "VDB_ENDPOINT": eng.endpoint, "VDB_CA": str(eng.ca), "VDB_TOKEN_FILE": str(eng.token_file)}
    assert out(subprocess.run([CTL, "get", "env"], capture_output=True, env=env)) == "ok\n"


def test_bench_reports_throughput_and_percentiles(eng: EngineProcess) -> None:
    r = eng.ctl("bench", "--help")
    assert r.returncode == 0
    help_text = r.stdout.decode()
    args = ["bench"]
    for flag, value in (("--requests", "2000"), ("--connections", "4"), ("--pipeline", "4")):
        if flag in help_text:
            args += [flag, value]
    text = out(eng.ctl(*args, timeout=120))
    for op in ("SET", "GET", "INCR"):
        assert op in text.upper()
    assert "ops/s" in text and "p99" in text


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
