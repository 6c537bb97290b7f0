"""spec.replication.leaseDurationSeconds / leaseRenewIntervalMilliseconds on a real
kube-apiserver (issue 17): bounds and the ratio rule at admission, `kubectl explain`, the
engine flags in the StatefulSet, a change rolling the pods, and real engines started with
those flags (as podsim pods, acting as the cluster's ServiceAccount) electing through the
Lease with the configured duration: after the primary is killed (SIGKILL: no hand-over,
no release), the other engine takes the Lease no sooner than the duration allows and
about a duration plus two renew intervals later.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner

from tests.kube.kube_api import KubeAPI

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for
from .podsim import ClusterMaterial, SimulatedPod, engine_kubeconfig
from .test_pod_template import roll


def _args(sts: dict[str, Any]) -> list[str]:
    args: list[str] = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_explained(kubectl: Kubectl, crds: None) -> None:
    def explain(path: str) -> str:
        return wait_for(f"kubectl explain {path}",
                        lambda: (d := kubectl.run("explain", path, check=False)).returncode == 0
                        and " ".join(d.stdout.split()))  # one line: kubectl wraps descriptions

    duration = explain("vc.spec.replication.leaseDurationSeconds")
    assert "plus two renew intervals later" in duration and "clock skew" in duration
    assert "At most a fifth of leaseDurationSeconds" in explain("vc.spec.replication.leaseRenewIntervalMilliseconds")


@pytest.mark.parametrize("replication, message", [
    ({"leaseDurationSeconds": 2}, "should be greater than or equal to 3"),
    ({"leaseDurationSeconds": 301}, "should be less than or equal to 300"),
    ({"leaseRenewIntervalMilliseconds": 200}, "should be greater than or equal to 250"),
    ({"leaseDurationSeconds": 4}, "must be at most a fifth of replication.leaseDurationSeconds"),
    ({"leaseDurationSeconds": 3, "leaseRenewIntervalMilliseconds": 700}, "at most a fifth"),
    ({"leaseDurationSeconds": 60, "leaseRenewIntervalMilliseconds": 60_001}, "less than or equal to 60000"),
])
def test_unsafe_timing_is_refused(kubectl: Kubectl, crds: None, ns: str, replication: dict[str, int],
                                  message: str) -> None:
    done = kubectl.apply(cluster("bad", ns, replication=replication), check=False)
    assert done.returncode != 0, "the API server accepted an unsafe Lease timing"
    assert message in done.stderr, done.stderr


def test_safe_timing_is_accepted_and_defaulted(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("d", ns))
    obj = kubectl.get("vc", "d", ns)
    assert obj is not None
    assert obj["spec"]["replication"] == {"mode": "async", "syncReplicas": 1, "leaseDurationSeconds": 5,
                                          "leaseRenewIntervalMilliseconds": 1000}
    for duration, interval in ((3, 600), (3, 250), (300, 60_000), (10, 2000)):
        kubectl.apply(cluster("ok", ns, replication={"leaseDurationSeconds": duration,
                                                     "leaseRenewIntervalMilliseconds": interval}))
    # Shortening only the duration below 5 x the default interval needs a shorter interval.
    done = kubectl.apply(cluster("d", ns, replication={"leaseDurationSeconds": 3}), check=False)
    assert done.returncode != 0 and "at most a fifth" in done.stderr


def test_flags_in_the_statefulset_and_a_change_rolls_the_pods(kubectl: Kubectl, operator: OperatorProcess,
                                                              ns: str) -> None:
    selector = "app.kubernetes.io/instance=lt"
    kubectl.apply(cluster("lt", ns, replicas=2))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "lt", ns))
    assert "--lease-duration-s" not in _args(sts) and "--lease-renew-s" not in _args(sts)
    wait_for("2 pods", lambda: len(kubectl.items("pods", ns, selector)) == 2)
    mark_pods_ready(kubectl, ns, selector)
    kubectl.run("wait", "--for=condition=Ready", "vc/lt", "-n", ns, "--timeout=30s")

    order = roll(kubectl, ns, selector, 2, {"spec": {"replication": {
        "leaseDurationSeconds": 3, "leaseRenewIntervalMilliseconds": 500}}})
    assert sorted(order) == ["lt-0", "lt-1"], order
    sts = kubectl.get("statefulset", "lt", ns)
    assert sts is not None
    args = _args(sts)
    flags = {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--lease-")}
    assert flags["--lease-duration-s"] == "3" and flags["--lease-renew-s"] == "0.5"
    for pod in kubectl.items("pods", ns, selector):
        assert pod["spec"]["containers"][0]["args"] == args


def _holder(kubectl: Kubectl, ns: str, lease: str) -> tuple[str | None, int | None]:
    obj = kubectl.get("lease", lease, ns)
    spec = (obj or {}).get("spec") or {}
    return spec.get("holderIdentity"), spec.get("leaseDurationSeconds")


@pytest.mark.slow
@pytest.mark.parametrize("duration, interval_ms", [(5, 1000), (3, 500)])
def test_engines_elect_with_the_configured_duration(kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess,
                                                    ns: str, tmp_path: Path, engines: list[SimulatedPod],
                                                    duration: int, interval_ms: int) -> None:
    replication = {"leaseDurationSeconds": duration, "leaseRenewIntervalMilliseconds": interval_ms}
    kubectl.apply(cluster("el", ns, replicas=2, replication=replication))
    vc: dict[str, Any] = wait_for("the cluster", lambda: kubectl.get("vc", "el", ns))
    wait_for("rolebinding/el-engine", lambda: kubectl.get("rolebinding", "el-engine", ns))
    wait_for("Lease el-primary", lambda: kubectl.get("lease", "el-primary", ns))
    spec = VelocityClusterSpec.model_validate(vc["spec"])
    material = ClusterMaterial(Owner(name="el", namespace=ns, uid=vc["metadata"]["uid"]))
    kubeconfig = engine_kubeconfig(kubectl, kube_api, ns, "el-engine", tmp_path / "engine.kubeconfig")

    first = SimulatedPod(tmp_path / "el-0", material, spec, lease_kubeconfig=kubeconfig, pod_name="el-0")
    engines.append(first)
    first.start()
    endpoint = f"vdb://el-0.el-headless.{ns}.svc:2005"
    wait_for("el-0 to take the Lease", lambda: _holder(kubectl, ns, "el-primary")[0] == endpoint, timeout=30)
    # The holder declares its duration in the Lease (replicas wait for the longer of theirs and it).
    assert _holder(kubectl, ns, "el-primary")[1] == duration
    second = SimulatedPod(tmp_path / "el-1", material, spec, lease_kubeconfig=kubeconfig, pod_name="el-1")
    engines.append(second)
    second.start()
    wait_for("el-1's member Lease", lambda: _holder(kubectl, ns, "el-primary-member-1")[0]
             == f"vdb://el-1.el-headless.{ns}.svc:2005")
    time.sleep(2 * interval_ms / 1000)  # a few rounds: el-1 has observed el-0's renewals

    assert first.process is not None
    first.process.kill()  # SIGKILL: what a lost node looks like to the others (no release)
    t_kill = time.monotonic()
    wait_for("el-1 to take the Lease", lambda: _holder(kubectl, ns, "el-primary")[0]
             == f"vdb://el-1.el-headless.{ns}.svc:2005", timeout=duration + 30, interval=0.05)
    took = time.monotonic() - t_kill
    interval = interval_ms / 1000
    print(f"\nlease {duration}s / renew {interval_ms}ms: primary killed -> Lease taken {took:.2f}s "
          f"(expected about {duration} + up to {2 * interval:g})")
    # Never before the duration has passed since el-1 last saw a renewal (at most one
    # interval before the kill); late only by the rounds and the machine's load.
    assert took >= duration - interval - 0.1, took
    assert took <= duration + 2 * interval + 5, took
