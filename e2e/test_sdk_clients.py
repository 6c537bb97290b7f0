"""The Rust and Node.js SDKs on the cluster, across a deletion of the primary pod
(issues 14 and 15).

Each client runs in a pod of velocity/clients:dev (built offline by hack/images/build.sh,
docs/images.md): the Rust SDK's `velocity-e2e-client` (clients/rust/examples/e2e_client.rs,
a static binary) and `e2e-writer.js` (clients/node/examples/e2e-writer.ts) on Debian's
nodejs with the packed @velocity/core. Both connect to the VelocityCluster's client Service
with the credentials clients are given: the token from the `NAME-auth` Secret (env
VDB_TOKEN) and the CA from the `NAME-ca` Secret (mounted, VDB_CA), read by the SDKs
themselves (`Client::builder()...build()`, `new VelocityPool()`).

One VelocityCluster `sdk`: 3 pods in sync mode (syncReplicas 1: a write is acknowledged
once a replica has it; with three pods the survivors still acknowledge writes while the
deleted one is away), on the suite's node. Each test: the client writes KEY:i = i one
after the other and reads each acknowledged key back at once (a linearizable GET); after
100 acknowledged writes the primary pod is deleted; once another pod holds the Lease, is
labelled primary and behind the Service, 100 more writes acknowledged and the deleted pod
back as a Ready replica, the loop stops and reads every acknowledged key back through
the Service. Asserted: none lost, every read-back right after a write saw it, no key
given up (a failed write is retried, same key and value, for up to 30 s). Printed (-s):
acknowledged writes, attempts with an unknown outcome, attempts refused, keys given up,
and how long writes paused.
Run: `make e2e E2E_ARGS="e2e/test_sdk_clients.py -s"`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster_state import all_ready, create_sync_cluster, follow_switch, primary, state
from .kube import Kubectl, wait_for
from .operator_host import OperatorProcess, running_operator
from .sdk_pods import sdk_loop

CLUSTER = "sdk"
HARD_LIMIT_S = 30.0  # longest pause between two acknowledged writes (fails the test beyond)


@pytest.fixture(scope="module")
def operator(namespace: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log: Path = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(namespace, log) as op:
        yield op


@pytest.fixture(scope="module")
def cluster(namespace: Kubectl, operator: OperatorProcess) -> str:
    create_sync_cluster(namespace, CLUSTER)
    return CLUSTER


def _across_primary_deletion(ns: Kubectl, sdk: str) -> None:
    wait_for(lambda: all_ready(ns, CLUSTER, 3), timeout=180, what="3 pods Ready")
    old = primary(ns, CLUSTER)
    old_uid = state(ns, CLUSTER)["pods"][old]["uid"]
    loop = sdk_loop(ns, CLUSTER, f"{sdk}-writer", sdk)
    loop.wait_acked(100)
    t0 = time.time()
    ns.run("delete", "pod", old, "--wait=false")
    sw = follow_switch(ns, CLUSTER, t0, old)
    loop.wait_acked(loop.acked() + 100)
    wait_for(lambda: (p := state(ns, CLUSTER)["pods"].get(old)) and p["uid"] != old_uid and p["ready"]
             and p["role"] == "replica", timeout=180, what=f"{old} back, Ready, labelled replica")
    back = time.time() - t0
    result = loop.stop()
    resumed = None if result.gap_at is None else round(result.gap_at - t0, 2)
    print(f"\n{sdk} client ({result.extra.get('node_version', 'static binary')}) across the deletion of {old}: "
          f"{result.acked} writes acknowledged, {result.unknown} attempts with an unknown outcome, "
          f"{result.refused} refused (each retried), {result.failed} keys given up, {result.lost_count} lost; "
          f"{result.reads} reads of a key just written, {result.stale_read_count} stale, {result.read_errors} failed; "
          f"errors {result.error_kinds}; longest pause {result.longest_gap_s:.2f}s, ended {resumed}s after the "
          f"deletion; Lease to {sw.new} after {sw.seen['lease']:.2f}s, Service endpoints "
          f"{sw.seen['service endpoints']:.2f}s; {old} back as a Ready replica after {back:.1f}s")
    assert result.lost_count == 0, f"{sdk}: {result.lost_count} acknowledged writes lost: {result.lost}"
    assert result.stale_read_count == 0, f"{sdk}: reads missed the write just acknowledged: {result.stale_reads}"
    assert result.failed == 0, f"{sdk}: {result.failed} writes never acknowledged within 30 s ({result.error_kinds})"
    assert result.acked >= 200, result
    assert result.longest_gap_s <= HARD_LIMIT_S, f"{sdk}: writes paused for {result.longest_gap_s:.1f}s"


def test_rust_client_across_primary_deletion(namespace: Kubectl, cluster: str) -> None:
    _across_primary_deletion(namespace, "rust")


def test_node_client_across_primary_deletion(namespace: Kubectl, cluster: str) -> None:
    _across_primary_deletion(namespace, "node")
