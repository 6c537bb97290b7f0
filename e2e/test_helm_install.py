"""The operator installed with its Helm chart (charts/velocity-operator) on a real cluster:
two replicas, exactly one leading; it runs a small VelocityCluster; the leader's pod is
force-deleted and the other replica takes over and reconciles a scale-up.

Unlike the other modules the operator runs in the cluster, from the image velocity/operator:dev
(make e2e builds and imports it), so this is also the path a user installs. The release
watches only the module's namespace (watchNamespaces), so it never touches the clusters of
other modules. The CRDs are applied server-side first, as for the other modules: Helm
installs the chart's crds/ only where they are missing and never upgrades them.

helm comes from $VELOCITY_HELM, else hack/helm/build.sh (built from the Go module proxy on
first use, then cached). Run: `make e2e E2E_ARGS=e2e/test_helm_install.py` (local cluster)
or `pytest e2e/test_helm_install.py --kubeconfig K`.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .kube import Kubectl, KubectlError, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import REPO

CHART = REPO / "charts" / "velocity-operator"
OPERATOR_IMAGE = os.environ.get("VELOCITY_OPERATOR_IMAGE", "velocity/operator:dev")
OPERATOR_PODS = "app.kubernetes.io/name=velocity-operator"
NAME = "hx"
# A force-deleted leader does not release its Lease: the standby waits out the term
# (leaderElection.leaseDurationSeconds, 15 s by default) plus retries and kopf's start.
TAKEOVER_BOUND_S = 60.0


@functools.cache
def _helm() -> str:
    """$VELOCITY_HELM, else the cached build of hack/helm/build.sh (built if missing)."""
    if os.environ.get("VELOCITY_HELM"):
        return os.environ["VELOCITY_HELM"]
    done = subprocess.run(["bash", str(REPO / "hack/helm/build.sh")], capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        pytest.fail(f"helm could not be built (hack/helm/build.sh):\n{done.stderr[-3000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Release:
    """A Helm release of the chart in the module's namespace."""

    ns: Kubectl
    name: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-velocity-operator"

    def helm(self, *args: str, timeout: float = 420) -> str:
        done = subprocess.run([_helm(), *args, "--kubeconfig", self.ns.kubeconfig,
                               "--namespace", str(self.ns.namespace)],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise KubectlError(f"helm {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout


def _established(ns: Kubectl, crd: str) -> bool:
    conditions = (ns.json("get", "crd", crd).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


@pytest.fixture(scope="module")
def release(namespace: Kubectl) -> Iterator[Release]:
    """The chart installed (helm install --wait); on exit the namespace's Velocity resources
    are deleted while the operator still runs (it holds their finalizers), then the release."""
    namespace.run("apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("velocityclusters.vdb.io", "velocitybackups.vdb.io"):
        wait_for(functools.partial(_established, namespace, crd), timeout=60, what=f"CRD {crd} Established")
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    rel = Release(namespace, f"vo-{uuid.uuid4().hex[:6]}")
    start = time.monotonic()
    out = rel.helm("install", rel.name, str(CHART), "--wait", "--timeout", "5m",
                   "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                   "--set", f"image.pullPolicy={PULL_POLICY}", "--set", f"engineImage={ENGINE_IMAGE}",
                   "--set", f"watchNamespaces={{{namespace.namespace}}}")
    print(f"\nhelm install --wait: {time.monotonic() - start:.1f}s\n{out}")
    try:
        yield rel
    finally:
        namespace.run("delete", "velocitybackups,velocityclusters", "--all", "--wait=true", "--timeout=120s",
                      check=False, timeout=150)
        for pod in namespace.json("get", "pods", "-l", OPERATOR_PODS)["items"]:
            print(f"--- logs {pod['metadata']['name']}\n"
                  + namespace.run("logs", pod["metadata"]["name"], "--tail=40", check=False))
        rel.helm("uninstall", rel.name, "--wait", timeout=300)


def _operator_pods(ns: Kubectl) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = ns.json("get", "pods", "-l", OPERATOR_PODS)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _health(ns: Kubectl, pod: str) -> dict[str, Any]:
    """The pod's /healthz (port 8081) and its velocity_operator_leader gauge (8080)."""
    with ns.port_forward(f"pod/{pod}", 8081) as port, \
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        health: dict[str, Any] = json.loads(reply.read())
    with ns.port_forward(f"pod/{pod}", 8080) as port, \
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        metrics = reply.read().decode()
    gauge = [line.split()[-1] for line in metrics.splitlines() if line.startswith("velocity_operator_leader ")]
    health["gauge"] = float(gauge[0]) if gauge else None
    return health


def _holder(ns: Kubectl, lease: str) -> str:
    spec = ns.json("get", "lease", lease).get("spec") or {}
    return str(spec.get("holderIdentity") or "")


def _leaders(ns: Kubectl, release: Release) -> list[str]:
    """The operator pods that say they lead; checks each one's report against the Lease."""
    holder = _holder(ns, release.fullname)
    leaders = []
    for pod in _operator_pods(ns):
        name = pod["metadata"]["name"]
        health = _health(ns, name)
        assert health["leaderElection"] is True and health["identity"].startswith(f"{name}_"), health
        if health["leader"]:
            assert health["gauge"] == 1 and holder == health["identity"], (health, holder)
            leaders.append(name)
        else:
            assert health["gauge"] == 0, health
    return leaders


def _cluster(**spec: Any) -> dict[str, Any]:
    spec.setdefault("image", ENGINE_IMAGE)
    spec.setdefault("imagePullPolicy", PULL_POLICY)
    spec.setdefault("storage", {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}})
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": NAME}, "spec": spec}


def test_two_replicas_exactly_one_leads(namespace: Kubectl, release: Release) -> None:
    deployment = namespace.json("get", "deployment", release.fullname)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
    pods = _operator_pods(namespace)
    assert len(pods) == 2
    leaders = wait_for(lambda: _leaders(namespace, release), timeout=60, what="an operator pod to lead")
    assert len(leaders) == 1, leaders


def test_the_leader_runs_a_cluster(namespace: Kubectl, release: Release) -> None:
    start = time.monotonic()
    namespace.apply(_cluster(replicas=1))
    namespace.run("wait", "--for=condition=Ready", f"vc/{NAME}", "--timeout=300s", timeout=320)
    print(f"\napply -> Ready under the Helm-installed operator: {time.monotonic() - start:.1f}s")
    vc = namespace.json("get", "vc", NAME)
    assert vc["status"]["readyReplicas"] == 1 and vc["status"]["currentPrimary"] == f"{NAME}-0"
    # Only the leader reconciled: the standby's log has no handler run.
    (leader,) = _leaders(namespace, release)
    for pod in _operator_pods(namespace):
        if pod["metadata"]["name"] != leader:
            log = namespace.run("logs", pod["metadata"]["name"])
            assert "Handler" not in log, log[-2000:]


def test_leader_pod_killed_the_other_takes_over(namespace: Kubectl, release: Release) -> None:
    (leader,) = _leaders(namespace, release)
    old_holder = _holder(namespace, release.fullname)
    namespace.run("delete", "pod", leader, "--grace-period=0", "--force", check=False)
    killed = time.monotonic()
    namespace.run("patch", "vc", NAME, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    wait_for(lambda: _holder(namespace, release.fullname) not in ("", old_holder), timeout=TAKEOVER_BOUND_S,
             interval=0.5, what="another operator pod to take the Lease")
    took_over = time.monotonic() - killed
    wait_for(lambda: namespace.json("get", "statefulset", NAME)["spec"]["replicas"] == 2, timeout=60,
             what="the scale-up reconciled by the new leader")
    reconciled = time.monotonic() - killed
    print(f"\nleader pod force-deleted -> Lease taken over in {took_over:.1f}s, "
          f"scale-up reconciled after {reconciled:.1f}s")
    namespace.run("wait", "--for=condition=Ready", f"vc/{NAME}", "--timeout=300s", timeout=320)
    assert namespace.json("get", "vc", NAME)["status"]["readyReplicas"] == 2
    # The Deployment replaced the killed pod: two replicas again, still exactly one leader.
    wait_for(lambda: len(_operator_pods(namespace)) == 2
             and namespace.json("get", "deployment", release.fullname)["status"].get("readyReplicas") == 2,
             timeout=180, what="the replacement operator pod ready")
    assert len(_leaders(namespace, release)) == 1
