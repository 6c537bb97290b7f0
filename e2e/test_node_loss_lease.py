"""Node loss with a shorter primary Lease (spec.replication.leaseDurationSeconds 3,
leaseRenewIntervalMilliseconds 500; docs/operator/replication.md, issue 17).

The same scenario and measurement as test_node_loss_under_load in e2e/test_failover.py
(whose helpers it uses), which runs with the default Lease (5 s, renewed every 1 s): the
cluster `fo` of three pods in sync mode, the primary alone on a node, that node stopped
(kubelet and containers) under an SDK write load; printed: the seconds until writes are
acknowledged again and when the Lease, role label, status and Service moved. No acknowledged
write may be lost.

A long scenario (its own three-pod cluster plus a node stop and start, several minutes), so
it is marked `long_e2e` and left out of `make e2e` / `make test`. Run:
`make e2e E2E_ARGS="e2e/test_node_loss_lease.py --long-e2e -s"`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .kube import Kubectl
from .operator_host import OperatorProcess, running_operator
from .test_failover import CLUSTER, _cluster_spec, bring_up, lose_primary_node

LEASE = {"leaseDurationSeconds": 3, "leaseRenewIntervalMilliseconds": 500}

pytestmark = pytest.mark.long_e2e


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


@pytest.fixture(scope="module")
def cluster(namespace: Kubectl, operator: OperatorProcess, node_control: str | None) -> str:
    """`fo` with the short Lease, Ready with 3 pods, one alone on a stoppable node (its name)."""
    if node_control is None:
        pytest.skip("node loss needs --node-control CMD (make e2e passes hack/cluster/node.sh)")
    return bring_up(namespace, node_control, _cluster_spec(**LEASE))


def test_node_loss_with_a_short_lease(namespace: Kubectl, cluster: str, node_control: str | None) -> None:
    lease = namespace.json("get", "lease", f"{CLUSTER}-primary")["spec"]
    assert lease.get("leaseDurationSeconds") == LEASE["leaseDurationSeconds"], lease
    recovery = lose_primary_node(namespace, cluster, node_control, "node loss, Lease 3 s / renew 500 ms")
    print(f"node loss with leaseDurationSeconds 3, renew 500 ms: writes acknowledged again after {recovery:.2f}s")
