"""The operator's panels and alerts against a real, running operator.

The operator runs as a real process against the tier-1 Kubernetes API server (etcd +
kube-apiserver + kube-controller-manager, tests/kube) through the operator tests'
fixtures. It is driven through every path that creates a labelled series: a cluster
reconciled (reconciles, durations, phases, certificate expiry), a backup of it whose Job
pod the test reports Succeeded, playing the kubelet (backups by result, last successful
backup), a backup that fails (backups by result) and a cluster whose StatefulSet a
ResourceQuota forbids (reconcile errors). Then:

- its /metrics is polled until every metric the panels and rules use is there;
- a real Prometheus scrapes it as the ServiceMonitor would (job velocity-operator,
  honorLabels) and every operator dashboard query must return a finite value;
- the two operator alerts react to those real failures: VelocityBackupFailed fires and
  VelocityOperatorReconcileErrors is pending (it needs 15 minutes to fire).

The tier has no kubelet, so engine pods never run here. The cluster dashboard's panels
that put the operator's series beside the engine's (ready pods against the desired
replicas, backup age) are checked with one real engine process scraped as pod obs-0 of
VelocityCluster obs, the way the PodMonitor labels it.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from velocity_dashboards import catalog
from velocity_dashboards.inventory import all_queries, dashboard_queries
from velocity_dashboards.promql import to_promql, variable_selector
from velocity_dashboards.rules import RULES_FILE

from tests.dashboards.conftest import REPO_ROOT
from tests.dashboards.prometheus_proc import PrometheusProcess, ScrapeTarget
from tests.dashboards.test_exported import exported_sample_names, missing_names, operator_query
from tests.operator.conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready
from tests.support.engine_proc import EngineProcess, wait_until

# Where the operator runs, as the ServiceMonitor's target labels would say.
OPERATOR = {"namespace": "velocity-system", "pod": "velocity-operator-0"}
RATE_INTERVAL = "4s"


def _backup(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _no_statefulsets_quota(ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-statefulsets", "namespace": ns},
            "spec": {"hard": {"count/statefulsets.apps": "0"}}}


def _complete_backup(kubectl: Kubectl, ns: str, cluster_name: str, backup: str) -> None:
    """Take a backup of a cluster whose pods the test marks Ready, and play the kubelet for
    its Job: the snapshot pod Succeeded with the runner's report as termination message."""
    mark_pods_ready(kubectl, ns, f"app.kubernetes.io/instance={cluster_name},app.kubernetes.io/component=engine")
    kubectl.run("wait", "--for=condition=Ready", f"vc/{cluster_name}", "-n", ns, "--timeout=60s")
    kubectl.apply(_backup(backup, ns, cluster=cluster_name))
    pod = wait_until(lambda: kubectl.items("pods", ns, f"vdb.io/backup={backup}"), 60, 0.2,
                     f"the snapshot Job's pod of {backup}")[0]
    report = {"sizeBytes": 4096, "checksum": "sha256:" + "ab" * 32, "durationSeconds": 0.25}
    now = "2026-01-01T00:00:00Z"
    kubectl.run("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"phase": "Succeeded", "containerStatuses": [{
                    "name": pod["spec"]["containers"][0]["name"], "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "", "ready": False, "restartCount": 0, "started": False,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": json.dumps(report),
                                             "startedAt": now, "finishedAt": now}}}]}}))


@pytest.fixture(scope="module")
def obs_ns(kubectl: Kubectl) -> Iterator[str]:
    ns = f"obs-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", ns)
    try:
        yield ns
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def driven(kubectl: Kubectl, operator: OperatorProcess, obs_ns: str) -> Iterator[OperatorProcess]:
    """The operator after a reconciled cluster, a failed backup and a forbidden StatefulSet."""
    ns = obs_ns
    kubectl.apply(cluster("obs", ns, replicas=1))
    wait_until(lambda: kubectl.get("statefulset", "obs", ns), 60, 0.2, "the operator to create StatefulSet obs")
    wait_until(lambda: kubectl.items("pods", ns, "app.kubernetes.io/instance=obs"), 60, 0.2, "pod obs-0")
    _complete_backup(kubectl, ns, "obs", "obs-b1")
    kubectl.apply(_backup("obs-orphan", ns, cluster="no-such-cluster"))
    kubectl.apply(_no_statefulsets_quota(ns))
    # The API server enforces a quota only once it knows it: wait until the quota
    # controller has published its status, or the StatefulSet may slip through.
    wait_until(
        lambda: ((kubectl.get("resourcequota", "no-statefulsets", ns) or {}).get("status") or {}).get("hard"),
        60, 0.2, "the ResourceQuota's status")
    kubectl.apply(cluster("obs-blocked", ns, replicas=1))
    yield operator


@pytest.fixture(scope="module")
def prom(driven: OperatorProcess, obs_ns: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    base = tmp_path_factory.mktemp("operator-prometheus")
    with EngineProcess(base / "engine") as engine:
        targets = [
            ScrapeTarget("velocity-operator", f"127.0.0.1:{driven.metrics_port}", OPERATOR, honor_labels=True),
            ScrapeTarget("velocity-engine", f"127.0.0.1:{engine.metrics_port}",
                         {"cluster": "obs", "namespace": obs_ns, "pod": "obs-0"}),
        ]
        with PrometheusProcess(base / "prometheus", targets, [REPO_ROOT / RULES_FILE]) as p:
            yield p


def test_every_operator_metric_used_is_exported_by_a_running_operator(driven: OperatorProcess) -> None:
    queries = [q for q in all_queries(REPO_ROOT) if operator_query(q)]
    assert len(queries) >= 8
    exported: set[str] = set()

    def all_exported() -> bool:
        exported.update(exported_sample_names(driven.metrics()))
        return not missing_names(queries, exported, operator=True)

    with contextlib.suppress(TimeoutError):
        wait_until(all_exported, 60, 0.25, "every used operator metric in /metrics")
    missing = missing_names(queries, exported, operator=True)
    assert not missing, (
        "metrics used but not exported by the running operator:\n" + "\n".join(sorted(missing))
        + f"\n--- operator log ---\n{driven.log_tail()}"
    )


def _operator_panel_queries() -> list[tuple[str, str]]:
    return [(q.origin, to_promql(q.expr, OPERATOR, rate_interval=RATE_INTERVAL)) for q in dashboard_queries()
            if q.dashboard == "velocity-operator" and ": variable $" not in q.origin]


@pytest.mark.parametrize(("origin", "expr"), _operator_panel_queries(), ids=[o for o, _ in _operator_panel_queries()])
def test_operator_dashboard_query_returns_data(prom: PrometheusProcess, origin: str, expr: str) -> None:
    result: list[dict[str, Any]] = []

    def answered() -> bool:
        result[:] = prom.query(expr)
        return any(math.isfinite(float(r["value"][1])) for r in result)

    try:
        wait_until(answered, 60, 0.25, f"{origin} to return a finite value")
    except TimeoutError:
        pytest.fail(f"{origin}: no finite result from\n  {expr}\n  last answer: {result}\n{prom.log()}")


def _cluster_dashboard_operator_queries() -> list[tuple[str, str]]:
    return [(q.origin, q.expr) for q in dashboard_queries()
            if q.dashboard == "velocity-cluster" and ": variable $" not in q.origin and operator_query(q)]


@pytest.mark.parametrize(("origin", "expr"), _cluster_dashboard_operator_queries(),
                         ids=[o for o, _ in _cluster_dashboard_operator_queries()])
def test_cluster_dashboard_operator_query_returns_data(prom: PrometheusProcess, obs_ns: str, origin: str,
                                                       expr: str) -> None:
    promql = to_promql(expr, {"cluster": "obs", "namespace": obs_ns, "pod": "obs-0"}, rate_interval=RATE_INTERVAL)
    result: list[dict[str, Any]] = []

    def answered() -> bool:
        result[:] = prom.query(promql)
        return any(math.isfinite(float(r["value"][1])) for r in result)

    try:
        wait_until(answered, 60, 0.25, f"{origin} to return a finite value")
    except TimeoutError:
        pytest.fail(f"{origin}: no finite result from\n  {promql}\n  last answer: {result}\n{prom.log()}")


def test_ready_pods_is_ready_over_desired(prom: PrometheusProcess, obs_ns: str, kubectl: Kubectl) -> None:
    """Cluster obs wants 1 replica and its one engine is ready: 100%. Two desired: 50%, not green."""
    panel = next(p for p in catalog.cluster_dashboard().rows[0].panels if p.title == "Ready pods")
    promql = to_promql(panel.targets[0].expr, {"cluster": "obs", "namespace": obs_ns, "pod": ".*"})

    def ratio() -> float | None:
        values = [float(r["value"][1]) for r in prom.query(promql)]
        return values[0] if len(values) == 1 else None

    assert wait_until(lambda: ratio() == 1.0, 60, 0.25, "ready/desired = 1") is True
    kubectl.run("patch", "vc", "obs", "-n", obs_ns, "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}}))
    assert wait_until(lambda: ratio() == 0.5, 60, 0.25, "ready/desired = 1/2") is True
    green_from = min(t.value for t in panel.thresholds if t.color == "green" and t.value is not None)
    assert green_from > 0.5


def test_operator_variables_list_the_operator(prom: PrometheusProcess) -> None:
    for v in catalog.operator_dashboard().variables:
        selector = to_promql(variable_selector(v.query), OPERATOR)

        def values(selector: str = selector, label: str = v.name) -> set[str]:
            return {s[label] for s in prom.api("series", **{"match[]": selector}) if label in s}

        with contextlib.suppress(TimeoutError):
            wait_until(lambda f=values, e={OPERATOR[v.name]}: f() == e, 30, 0.2, f"${v.name} values")
        assert values() == {OPERATOR[v.name]}, v.name


def test_operator_alerts_react_to_the_real_failures(prom: PrometheusProcess) -> None:
    want = {"VelocityBackupFailed": "firing", "VelocityOperatorReconcileErrors": "pending"}

    def states() -> dict[str, str]:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        bad = {r["name"]: r.get("lastError") for r in rules if r["health"] == "err"}
        assert not bad, bad
        return {r["name"]: r["state"] for r in rules if r["name"] in want}

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: states() == want, 60, 0.25, "the operator alerts' states")
    assert states() == want
