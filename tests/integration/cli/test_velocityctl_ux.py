"""velocityctl as redis-cli users expect it (issue 16): --version, --json on every command
that prints data, the new commands, values from stdin, environment settings, quiet broken
pipes, errors that name their cause, shell completion, admin credentials, and Ctrl-C in bench."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from velocity import __version__

from tests.support.engine_proc import CTL, EngineProcess


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("ctl-ux")) as e:
        yield e


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
    env.update(extra)
    return env


def out(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout.decode()


def js(eng: EngineProcess, *args: str, code: int = 0, input: bytes | None = None) -> Any:
    r = eng.ctl(*args, "--json", input=input)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def one_line_error(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("velocityctl: "), r.stderr
    return lines[0]


def test_version() -> None:
    r = subprocess.run([CTL, "--version"], capture_output=True, env=clean_env())
    assert out(r) == f"velocityctl {__version__}\n"


def test_json_on_every_command_that_prints_data(eng: EngineProcess, tmp_path: Path) -> None:
    assert js(eng, "ping")["pong"] is True
    assert js(eng, "set", "j:s", "text") == {"key": "j:s", "written": True}
    assert js(eng, "set", "j:s", "other", "--nx") == {"key": "j:s", "written": False}
    assert js(eng, "get", "j:s") == {"key": "j:s", "found": True, "type": "str", "value": "text"}
    assert js(eng, "get", "j:none", code=1) == {"key": "j:none", "found": False}
    out(eng.ctl("set", "j:b", "raw", "--type", "bytes"))
    assert js(eng, "get", "j:b")["value"] == {"base64": "cmF3"}
    assert js(eng, "mset", "j:1", "1", "j:2", "2", "--type", "int") == {"written": 2}
    assert js(eng, "mget", "j:1", "j:2", "j:none") == [
        {"key": "j:1", "found": True, "type": "int", "value": 1},
        {"key": "j:2", "found": True, "type": "int", "value": 2},
        {"key": "j:none", "found": False},
    ]
    assert js(eng, "incr", "j:1", "10") == {"key": "j:1", "value": 11}
    assert js(eng, "decr", "j:1") == {"key": "j:1", "value": 10}
    assert js(eng, "cas", "j:1", "10", "12", "--type", "int") == {"key": "j:1", "applied": True}
    assert js(eng, "exists", "j:1") == {"key": "j:1", "exists": True}
    assert js(eng, "expire", "j:1", "1h") == {"key": "j:1", "applied": True}
    assert 3590 < js(eng, "ttl", "j:1")["ttl_s"] <= 3600
    assert 3_590_000 < js(eng, "pttl", "j:1")["pttl_ms"] <= 3_600_000
    assert js(eng, "persist", "j:1") == {"key": "j:1", "applied": True}
    assert js(eng, "ttl", "j:none", code=1) == {"key": "j:none", "exists": False, "ttl_s": None}
    assert js(eng, "del", "j:1") == {"key": "j:1", "deleted": True}
    assert js(eng, "scan", "j:") == ["j:2", "j:b", "j:s"]
    assert js(eng, "scan", "no-such-prefix:") == []
    assert js(eng, "info")["server"]["tls"] is True
    snap = js(eng, "snapshot", str(tmp_path / "snap.vsnap"))
    assert snap["bytes"] == (tmp_path / "snap.vsnap").stat().st_size > 0
    rows = js(eng, "bench", "-n", "200", "-c", "2", "-t", "get")
    assert rows[0]["op"] == "get" and rows[0]["requests"] == 200 and rows[0]["interrupted"] is False


def test_new_commands_in_text_form(eng: EngineProcess) -> None:
    assert out(eng.ctl("mset", "t:a", "x", "t:b", "y")) == "OK\n"
    assert out(eng.ctl("mget", "t:a", "t:missing", "t:b")) == "x\n\ny\n"
    assert out(eng.ctl("cas", "t:a", "x", "z")) == "OK\n"
    assert out(eng.ctl("cas", "t:a", "x", "w")) == "NOT SET\n"
    assert out(eng.ctl("cas", "t:new", "", "v", "--absent")) == "OK\n"
    assert out(eng.ctl("get", "t:a")) == "z\n"
    assert out(eng.ctl("pttl", "t:a")) == "-1\n"
    r = eng.ctl("pttl", "t:missing")
    assert (r.returncode, r.stdout) == (1, b"-2\n")
    assert "pairs" in one_line_error(eng.ctl("mset", "t:a"))


def test_dash_reads_the_value_from_stdin(eng: EngineProcess) -> None:
    payload = b"line one\nline two\n\x00binary"
    assert out(eng.ctl("set", "in:bytes", "-", "--type", "bytes", input=payload)) == "OK\n"
    assert eng.ctl("get", "in:bytes").stdout == payload + b"\n"
    assert out(eng.ctl("set", "in:json", "-", "--type", "json", input=b'{"a": [1, 2]}')) == "OK\n"
    assert json.loads(out(eng.ctl("get", "in:json"))) == {"a": [1, 2]}
    assert out(eng.ctl("set", "in:text", "-", input="héllo\n".encode())) == "OK\n"
    assert js(eng, "get", "in:text")["value"] == "héllo\n"
    assert out(eng.ctl("mset", "in:m1", "-", "in:m2", "plain", input=b"from stdin")) == "OK\n"
    assert out(eng.ctl("get", "in:m1")) == "from stdin\n"
    assert out(eng.ctl("cas", "in:m1", "from stdin", "-", input=b"next")) == "OK\n"
    assert out(eng.ctl("get", "in:m1")) == "next\n"
    assert "one value" in one_line_error(eng.ctl("mset", "a", "-", "b", "-", input=b"x"))


def test_environment_timeout_and_insecure(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "plain", insecure=True) as plain:
        env = clean_env(VDB_ENDPOINT=plain.endpoint, VDB_INSECURE="1", VDB_TIMEOUT="3")
        assert out(subprocess.run([CTL, "set", "env:k", "v"], capture_output=True, env=env)) == "OK\n"
        r = subprocess.run([CTL, "get", "env:k"], capture_output=True,
                           env={**env, "VDB_TIMEOUT": "not-a-number"})
        assert r.returncode == 2 and b"timeout" in r.stderr.lower()
        r = subprocess.run([CTL, "get", "env:k"], capture_output=True, env={**env, "VDB_INSECURE": "0"})
        assert "no token" in one_line_error(r)


def test_scan_into_head_exits_0_quietly(eng: EngineProcess) -> None:
    out(eng.ctl("mset", *[x for i in range(3000) for x in (f"pipe:{i:05d}", "v")]))
    ctl = subprocess.Popen(eng.ctl_args("scan", "pipe:", "--count", "100"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=eng.ctl_env())
    head = subprocess.run(["head", "-1"], stdin=ctl.stdout, capture_output=True, timeout=60)
    assert ctl.stdout is not None
    ctl.stdout.close()  # only head holds the read end now
    assert ctl.wait(60) == 0
    assert head.stdout == b"pipe:00000\n"
    assert ctl.stderr is not None and ctl.stderr.read() == b""


def test_errors_name_their_cause(eng: EngineProcess, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.crt"
    r = subprocess.run([CTL, "--endpoint", eng.endpoint, "--ca", str(missing), "--token-file", str(eng.token_file),
                        "ping"], capture_output=True, env=clean_env())
    line = one_line_error(r)
    assert str(missing) in line and "No such file" in line
    other = EngineProcess(tmp_path / "other")
    with other:
        pass
    r = subprocess.run([CTL, "--endpoint", eng.endpoint, "--ca", str(other.ca), "--token-file", str(eng.token_file),
                        "ping"], capture_output=True, env=clean_env())
    line = one_line_error(r)
    assert "TLS" in line and str(other.ca) in line and "--ca or VDB_CA" in line
    r = subprocess.run([CTL, "--endpoint", eng.endpoint, "--ca", str(eng.ca), "--token-file",
                        str(tmp_path / "no-token"), "ping"], capture_output=True, env=clean_env())
    assert str(tmp_path / "no-token") in one_line_error(r)


def test_completion_scripts() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        r = subprocess.run([CTL, "completion", shell], capture_output=True, env=clean_env())
        text = out(r)
        assert marker in text and "_VELOCITYCTL_COMPLETE" in text, (shell, text[:200])
    # and the script's protocol works: completing "velocityctl mg" offers mget
    env = clean_env(_VELOCITYCTL_COMPLETE="bash_complete", COMP_WORDS="velocityctl mg", COMP_CWORD="1")
    r = subprocess.run([CTL], capture_output=True, env=env)
    assert "mget" in r.stdout.decode()


def test_admin_commands_use_the_admin_token(eng: EngineProcess, tmp_path: Path) -> None:
    dest = tmp_path / "admin.vsnap"
    # Only the client token: the engine refuses snapshots to it.
    env = clean_env()
    r = subprocess.run(eng.ctl_args("snapshot", "-q", str(dest)), capture_output=True, env=env)
    assert "PERMISSION_DENIED" in one_line_error(r)
    r = subprocess.run(eng.ctl_args("snapshot", "-q", str(dest)), capture_output=True,
                       env=clean_env(VDB_ADMIN_TOKEN_FILE=str(eng.admin_token_file)))
    assert out(r).startswith(f"wrote {dest}")
    r = subprocess.run([*eng.ctl_args(), "--admin-token-file", str(eng.admin_token_file), "snapshot", "-q",
                        str(dest)], capture_output=True, env=env)
    assert out(r).startswith("wrote")
    r = subprocess.run(eng.ctl_args("snapshot", "-q", str(dest)), capture_output=True,
                       env=clean_env(VDB_ADMIN_TOKEN=eng.admin_token))
    assert out(r).startswith("wrote")
    # Data commands keep using the client token even when an admin token is given.
    r = subprocess.run(eng.ctl_args("get", "in:m1"), capture_output=True,
                       env=clean_env(VDB_ADMIN_TOKEN="not-used-for-data"))
    assert r.returncode in (0, 1), r.stderr


def test_ctrl_c_in_bench_prints_what_was_measured(eng: EngineProcess) -> None:
    proc = subprocess.Popen(eng.ctl_args("bench", "-t", "get,set", "-n", "100000000", "-c", "4"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=eng.ctl_env())
    try:
        # Wait until requests are flowing (the server counts them), then interrupt.
        before = _gets(eng)
        deadline = time.monotonic() + 60
        while _gets(eng) < before + 2000:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "bench never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    lines = stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("GET") and "INTERRUPTED" in lines[0], lines
    assert int(lines[0].split("(")[1].split()[0]) > 0  # requests measured before Ctrl-C


def _gets(eng: EngineProcess) -> float:
    for line in eng.metrics().splitlines():
        if line.startswith('velocity_requests_total{op="get"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_endpoint_may_be_a_url_with_token_and_ca(eng: EngineProcess, tmp_path: Path) -> None:
    import urllib.parse

    url = f"vdb://:{urllib.parse.quote(eng.token, safe='')}@127.0.0.1:{eng.port}?ca={eng.ca}"
    assert out(subprocess.run([CTL, "--endpoint", url, "set", "url:k", "v"], capture_output=True,
                              env=clean_env())) == "OK\n"
    assert out(subprocess.run([CTL, "get", "url:k"], capture_output=True, env=clean_env(VDB_ENDPOINT=url))) == "v\n"
    with EngineProcess(tmp_path / "plain", insecure=True) as plain:
        r = subprocess.run([CTL, "--endpoint", f"vdb+insecure://127.0.0.1:{plain.port}", "ping"],
                           capture_output=True, env=clean_env())
        assert out(r).startswith("PONG")
