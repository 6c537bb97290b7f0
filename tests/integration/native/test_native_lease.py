"""Lease election on the native data plane: the paths the Python suites do not reach.

tests/integration/replication/test_lease*.py run natively under
VELOCITY_TEST_DATA_PLANE=native; these tests pin `--data-plane native` and cover
what is particular to it (native_lease.py): PROMOTE and REPLICA_OF handed from
the core to the shell (and the connection's replies kept in order while the
shell works), the INFO and /metrics fields the shell pushes, and SIGTERM of the
native Lease holder handing the role over. They need the tier-1 Kubernetes API
server, as the other Lease tests do (VELOCITY_LEASE_TESTS=1).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode, encode_frame

from tests.integration.replication.cluster import Cluster, Node
from tests.kube.kube_api import KubeAPI
from tests.support.engine_proc import wait_until
from tests.support.raw import RawConnection


@pytest.fixture
def lease_pair(tmp_path: Path, kube_api: KubeAPI) -> Iterator[tuple[str, Node, Node]]:
    """(lease name, the elected primary, the replica): two native engines."""
    cluster = Cluster(tmp_path / "cluster")
    name = f"vnat-{secrets.token_hex(3)}"
    args = ("--data-plane", "native", "--lease-name", name, "--lease-kubeconfig", str(kube_api.kubeconfig),
            "--lease-duration-s", "4", "--lease-renew-s", "0.5")
    try:
        nodes = [cluster.node(n, *args) for n in ("a", "b")]
        for n in nodes:
            assert n.info()["server"]["data_plane"] == "native"
        primary = wait_until(lambda: next((n for n in nodes if n.repl()["role"] == "primary"), None), 30,
                             interval=0.2, what="a primary to be elected")
        replica = next(n for n in nodes if n is not primary)
        wait_until(lambda: primary.repl()["replicas_connected"] == 1, 30, interval=0.2, what="the replica to follow")
        yield name, primary, replica
    finally:
        cluster.close()


def _metric(node: Node, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", node.metrics(), re.M)
    assert found is not None, f"{name} not exported by {node.endpoint}"
    return float(found.group(1))


def _admin(node: Node) -> RawConnection:
    c = RawConnection(node.port, node.ca)
    c.hello(node.admin_token_file.read_text().strip())
    return c


def test_promote_and_replica_of_are_answered_by_the_shell_in_order(lease_pair: tuple[str, Node, Node]) -> None:
    _, primary, replica = lease_pair
    with _admin(replica) as c:
        # Pipelined: the PING behind the PROMOTE is answered after it, not before.
        c.send(encode_frame(Opcode.PROMOTE, 0, m.PromoteRequest(0).encode())
               + encode_frame(Opcode.PING, 0, m.PingRequest(b"after").encode()))
        err = c.read_error()
        assert err.code == ErrorCode.INVALID_ARGUMENT
        # The Lease agent's words: the core alone would have promoted this node.
        assert "PROMOTE refused" in err.message and primary.endpoint in err.message, err.message
        opcode, _, body = c.read_frame()
        assert opcode == Opcode.PING | 0x80 and m.PingResponse.decode(body).payload == b"after"
    assert replica.repl()["role"] == "replica"
    with _admin(primary) as c:
        c.request(Opcode.REPLICA_OF, m.ReplicaOfRequest("", 0).encode())
        err = c.read_error()
        assert err.code == ErrorCode.INVALID_ARGUMENT and "use switchover" in err.message, err.message
    r = primary.repl()
    assert r["role"] == "primary" and r["lease"]["writes_allowed"] is True and r["handover"] == ""
    wait_until(lambda: replica.repl()["lease"]["holder"] == primary.endpoint, 5, interval=0.05,
               what="the replica's INFO to name the Lease holder")
    assert _metric(primary, "velocity_lease_holder") == 1.0
    assert _metric(replica, "velocity_lease_holder") == 0.0
    assert _metric(primary, "velocity_lease_renewals_total") >= 1.0


def test_sigterm_of_the_native_lease_holder_hands_over(lease_pair: tuple[str, Node, Node],
                                                       kube_api: KubeAPI) -> None:
    name, primary, replica = lease_pair
    epoch = primary.repl()["epoch"]

    async def write() -> None:
        async with primary.pool() as vdb:
            await vdb.mset({f"k{i}": i for i in range(200)})

    asyncio.run(write())
    primary.stop()  # SIGTERM, until the process has exited
    holder = kube_api.kubectl("get", "lease", name, "-o", "jsonpath={.spec.holderIdentity}")
    assert holder == replica.endpoint, "the Lease was handed over before the process exited"
    r = wait_until(lambda: (r := replica.repl())["role"] == "primary" and r, 5, interval=0.05,
                   what="the successor to be the primary")
    assert r["epoch"] == epoch + 1
    assert "switchover: " in primary.log_path.read_text(errors="replace")

    async def read() -> list[object]:
        async with replica.pool() as vdb:
            out: list[object] = await vdb.mget([f"k{i}" for i in range(200)])
            return out

    assert asyncio.run(read()) == list(range(200)), "acknowledged writes lost in the hand-over"
    assert _metric(replica, "velocity_lease_acquisitions_total") >= 1.0
