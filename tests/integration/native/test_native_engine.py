"""The engine with `--data-plane native` (issue 13): what is particular to it.

Everything the protocol promises is tested by the engine and security suites,
which run against the native data plane with VELOCITY_TEST_DATA_PLANE=native
(tests/support/engine_proc.py). These tests cover the shell around the core:
start-up choices, INFO and /metrics fed from the core, live settings, stop.
Skipped when the extension is not built (`make native`).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode

from tests.support.engine_proc import EngineProcess, wait_until
from tests.support.raw import RawConnection

try:  # a missing core is a failure, not a skip: `make test-native` builds it first
    import velocity_engine._core  # noqa: F401
except ImportError as exc:
    raise RuntimeError(f"the native data plane is not built ({exc}): run make native") from exc

NATIVE = ["--data-plane", "native", "--storage", "memory"]


def info(eng: EngineProcess) -> dict[str, Any]:
    out = eng.ctl("info", "--json", check=True).stdout
    return dict(json.loads(out))


def metric(eng: EngineProcess, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", eng.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def test_info_and_metrics_come_from_the_core(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "e", extra_args=NATIVE) as eng:

        async def go() -> None:
            async with eng.pool() as vdb:
                for i in range(20):
                    await vdb.set(f"k{i}", i, ttl="1h")
                assert await vdb.get("k3") == 3
                assert await vdb.incr("n") == 1

        asyncio.run(go())
        d = info(eng)
        assert d["server"]["data_plane"] == "native" and d["server"]["threads"] >= 1
        assert d["server"]["tls"] is True and d["server"]["auth"] is True
        assert d["keys"] == 21 and d["keys_with_ttl"] == 20
        assert d["stats"]["requests"]["set"] == 20 and d["storage"]["engine"] == "memory"
        assert d["replication"]["role"] == "primary" and d["config"]["max_connections"] == 10_000
        assert set(d["service_time_ns"]["set"]) == {"p50", "p99", "p999"}
        assert metric(eng, "velocity_requests_total", '{op="set"}') == 20
        assert metric(eng, "velocity_request_duration_seconds_count", '{op="get"}') == 1
        assert metric(eng, "velocity_keys") == 21
        assert metric(eng, "velocity_connections_accepted_total") >= 1


# An API server nobody listens on: the Lease agent's rounds fail, the node never holds the Lease.
UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: x, context: {cluster: x, user: u}}]
current-context: x
users: [{name: u, user: {token: t}}]
"""


def test_a_lease_node_takes_no_writes_until_it_holds_the_lease(tmp_path: Path) -> None:
    """--lease-name on the native plane (the elections themselves: test_native_lease.py, which
    needs the Kubernetes tier): a fresh node starts as a replica following nobody, writes
    are redirected (retry), and INFO and /metrics carry the Lease fields."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    args = [*NATIVE, "--lease-name", "velocity", "--lease-kubeconfig", str(kubeconfig)]
    with EngineProcess(tmp_path / "e", extra_args=args) as eng:
        with RawConnection(eng.port, eng.ca) as c:
            c.hello(eng.token)
            c.request(Opcode.SET, m.SetRequest(key=b"k", value=b"v").encode())
            err = c.read_error()
            assert err.code == ErrorCode.REDIRECT and err.retry_after_ms > 0 and not err.primary, err
        r = info(eng)["replication"]
        assert r["role"] == "replica" and r["primary"] == ""
        assert r["lease"] == {"name": "velocity", "holder": "", "writes_allowed": False}
        assert r["handover"] == "" and r["switchover"] is None
        wait_until(lambda: metric(eng, "velocity_lease_renew_errors_total") >= 1,
                   what="a failed Lease round to be counted")
        assert metric(eng, "velocity_lease_holder") == 0.0


def test_max_connections_changes_live(tmp_path: Path) -> None:
    conf = tmp_path / "velocity.toml"
    conf.write_text("max_connections = 1\n")
    with EngineProcess(tmp_path / "e", extra_args=[*NATIVE, "--config", str(conf)]) as eng:
        first = RawConnection(eng.port, eng.ca)
        first.hello(eng.token)
        with RawConnection(eng.port, eng.ca) as c:
            c.request(Opcode.HELLO, m.HelloRequest(token=eng.token).encode())
            assert c.read_error().code == ErrorCode.BUSY
        conf.write_text("max_connections = 2\n")
        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: info(eng)["limits"]["max_connections"] == 2, what="the reload to reach the core")
        with RawConnection(eng.port, eng.ca) as c:
            c.hello(eng.token)
        first.close()


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=NATIVE)
    with eng:
        with RawConnection(eng.port, eng.ca) as c:
            c.hello(eng.token)
            c.request(Opcode.PING, m.PingRequest(b"x").encode())
            assert c.read_frame()[0] == Opcode.PING | 0x80
            assert eng.proc is not None
            eng.proc.send_signal(signal.SIGTERM)
            assert c.closed_by_server()
        assert eng.proc.wait(15) == 0, eng.log()
    assert "stopped" in eng.log()
