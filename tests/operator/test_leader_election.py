"""Two real operator processes with --leader-elect on the real kube-apiserver (issue 17).

Both run as the velocity-operator ServiceAccount of manifests/ (so the Lease RBAC is the
shipped one), with the Lease where the Deployment keeps it (velocity-system/velocity-operator)
and the default timings (15 s lease, 10 s renew deadline, 2 s retry):

- exactly one reconciles: the leader's velocity_operator_reconciles_total grows, the
  standby's stays absent and its velocity_operator_leader is 0 (also in /healthz);
- SIGKILL of the leader: the standby takes the Lease after its term and reconciles a
  change made right after the kill; the measured takeover is printed and bounded;
- SIGTERM of the leader releases the Lease: the standby takes over within a retry period;
- a leader that finds the Lease taken stops reconciling and exits with status 1.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.kube.kube_api import KubeAPI

from .conftest import REPO, Kubectl, OperatorProcess, cluster, wait_for

LEASE_NS, LEASE = "velocity-system", "velocity-operator"
LEASE_DURATION_S, RETRY_PERIOD_S = 15.0, 2.0
# SIGKILL -> change reconciled: the standby saw the last renewal up to one retry period
# (x1.2 jitter) late, waits a lease duration from then, tries again within a retry period,
# then starts kopf, which reconciles the change. 10 s of slack for a loaded machine.
TAKEOVER_BOUND_S = LEASE_DURATION_S + 2 * 1.2 * RETRY_PERIOD_S + 10


def _service_account_kubeconfig(kubectl: Kubectl, kube_api: KubeAPI, path: Path) -> KubeAPI:
    token = kubectl.run("create", "token", "velocity-operator", "-n", LEASE_NS, "--duration=1h").stdout.strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": kube_api.server,
                                               "certificate-authority": str(kube_api.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "sa"}}],
        "current-context": "t",
    }))
    return KubeAPI(kubeconfig=path, server=kube_api.server, ca_file=kube_api.ca_file,
                   cert_file=kube_api.cert_file, key_file=kube_api.key_file, bin_dir=kube_api.bin_dir)


class Candidate(OperatorProcess):
    """An operator process with leader election, its Lease in velocity-system."""

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as r:
                body: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 while kopf starts
            body = json.loads(exc.read())
        return body

    def leading(self) -> bool:
        return bool(self.health().get("leader")) and self.sample("velocity_operator_leader") == 1

    def sample(self, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(self.metrics()):
            for s in family.samples:
                if s.name == name and labels.items() <= s.labels.items():
                    return float(s.value)
        return None

    def reconciles(self) -> float:
        return self.sample("velocity_operator_reconciles_total", resource="VelocityCluster") or 0.0

    def kill(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


@pytest.fixture
def candidates(kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess, ns: str,
               tmp_path: Path) -> Iterator[tuple[KubeAPI, list[Candidate]]]:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests"))
    kubectl.run("delete", "lease", LEASE, "-n", LEASE_NS, "--ignore-not-found")
    api = _service_account_kubeconfig(kubectl, kube_api, tmp_path / "operator.kubeconfig")
    operator.stop()  # the session operator watches every namespace: only the candidates may reconcile
    started: list[Candidate] = []
    try:
        yield api, started
    finally:
        for c in started:
            c.stop()
        operator.start()


def _candidate(api: KubeAPI, workdir: Path, name: str, ns: str) -> Candidate:
    workdir.mkdir(exist_ok=True)
    return Candidate(api, workdir, extra_args=[
        "--namespace", ns, "--leader-elect", "--leader-elect-resource-namespace", LEASE_NS,
        "--leader-elect-identity", name])


def _lease(kubectl: Kubectl) -> dict[str, Any]:
    return (kubectl.get("lease", LEASE, LEASE_NS) or {}).get("spec") or {}


def _sts_replicas(kubectl: Kubectl, ns: str, name: str) -> int | None:
    sts = kubectl.get("statefulset", name, ns)
    return None if sts is None else int(sts["spec"]["replicas"])


def test_one_leader_reconciles_and_the_standby_takes_over(
        kubectl: Kubectl, candidates: tuple[KubeAPI, list[Candidate]], ns: str, tmp_path: Path) -> None:
    api, started = candidates
    a = _candidate(api, tmp_path / "a", "operator-a", ns)
    started.append(a)
    a.start()
    wait_for("operator-a to lead", a.leading, timeout=30)
    b = _candidate(api, tmp_path / "b", "operator-b", ns)
    started.append(b)
    b.start()
    health = b.health()
    assert health == {"status": "ok", "leaderElection": True, "leader": False, "identity": "operator-b",
                      "holder": "operator-a"}, health
    assert _lease(kubectl)["holderIdentity"] == "operator-a"

    # Exactly one reconciles: the cluster is built, by a alone, over several resync periods.
    kubectl.apply(cluster("le", ns, replicas=1))
    wait_for("StatefulSet le", lambda: kubectl.get("statefulset", "le", ns))
    time.sleep(6)  # three resync periods (2 s) in which b could wrongly act
    assert a.reconciles() >= 2, a.log_tail()
    assert b.reconciles() == 0 and b.sample("velocity_operator_leader") == 0
    assert "Handler" not in b.log.read_text(), b.log_tail()  # kopf never ran a handler in b

    # SIGKILL of the leader (no release), and a change right after it.
    a.kill()
    killed = time.monotonic()
    kubectl.run("patch", "vc", "le", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    wait_for("b to reconcile the change", lambda: _sts_replicas(kubectl, ns, "le") == 2,
             timeout=TAKEOVER_BOUND_S + 10, interval=0.1)
    takeover = time.monotonic() - killed
    lease = _lease(kubectl)
    print(f"\nleader SIGKILLed -> change reconciled by the standby: {takeover:.1f}s "
          f"(lease {LEASE_DURATION_S:g}s, retry {RETRY_PERIOD_S:g}s; bound {TAKEOVER_BOUND_S:.0f}s)")
    assert lease["holderIdentity"] == "operator-b" and lease["leaseTransitions"] == 1, lease
    assert LEASE_DURATION_S - RETRY_PERIOD_S <= takeover <= TAKEOVER_BOUND_S, takeover
    assert b.leading() and b.reconciles() >= 1

    # SIGTERM of the leader releases the Lease: a new standby takes over within a retry period.
    a2 = _candidate(api, tmp_path / "a2", "operator-a2", ns)
    started.append(a2)
    a2.start()
    assert not a2.leading()
    b.stop()
    assert b.popen is not None and b.popen.returncode == 0, b.log_tail()
    assert "released Lease velocity-system/velocity-operator" in b.log.read_text()
    stopped = time.monotonic()
    kubectl.run("patch", "vc", "le", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    wait_for("a2 to reconcile the change", lambda: _sts_replicas(kubectl, ns, "le") == 3,
             timeout=20, interval=0.1)
    handover = time.monotonic() - stopped
    print(f"leader SIGTERMed (Lease released) -> change reconciled by the standby: {handover:.1f}s")
    assert handover < 1.2 * RETRY_PERIOD_S + 8, handover
    assert _lease(kubectl)["holderIdentity"] == "operator-a2"

    # A leader that finds someone else in the Lease stops at once and exits 1.
    kubectl.run("patch", "lease", LEASE, "-n", LEASE_NS, "--type=merge", "-p",
                json.dumps({"spec": {"holderIdentity": "intruder", "leaseTransitions": 9}}))
    assert a2.popen is not None
    wait_for("a2 to exit", lambda: a2.popen is not None and a2.popen.poll() is not None,
             timeout=3 * RETRY_PERIOD_S + 5)
    assert a2.popen.returncode == 1, a2.log_tail()
    assert "leadership lost" in a2.log.read_text()
