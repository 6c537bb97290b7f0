"""Every operator metric a dashboard or alert uses is exported by a running operator.

The operator runs as a real process against the tier-1 Kubernetes API server (etcd +
kube-apiserver + kube-controller-manager, tests/kube) through the operator tests'
fixtures. It is driven through every path that creates a labelled series: a cluster
reconciled (reconciles, durations, phases, certificate expiry), a backup that fails
(backups by result) and a cluster whose StatefulSet a ResourceQuota forbids (reconcile
errors). Then its /metrics is scraped and polled until every used name is there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from velocity_dashboards.inventory import all_queries

from tests.dashboards.conftest import REPO_ROOT
from tests.dashboards.test_exported import exported_sample_names, missing_names, operator_query
from tests.operator.conftest import Kubectl, OperatorProcess, cluster
from tests.support.engine_proc import wait_until


def _backup(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _no_statefulsets_quota(ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-statefulsets", "namespace": ns},
            "spec": {"hard": {"count/statefulsets.apps": "0"}}}


def test_every_operator_metric_used_is_exported_by_a_running_operator(
    kubectl: Kubectl, operator: OperatorProcess, ns: str
) -> None:
    queries = [q for q in all_queries(REPO_ROOT) if operator_query(q)]
    assert len(queries) >= 8
    kubectl.apply(cluster("obs", ns, replicas=1))
    wait_until(lambda: kubectl.get("statefulset", "obs", ns), 60, 0.2, "the operator to create StatefulSet obs")
    kubectl.apply(_backup("obs-orphan", ns, cluster="no-such-cluster"))
    kubectl.apply(_no_statefulsets_quota(ns))
    # The API server enforces a quota only once it knows it: wait until the quota
    # controller has published its status, or the StatefulSet may slip through.
    wait_until(lambda: ((kubectl.get("resourcequota", "no-statefulsets", ns) or {}).get("status") or {}).get("hard"),
               60, 0.2, "the ResourceQuota's status")
    kubectl.apply(cluster("obs-blocked", ns, replicas=1))

    exported: set[str] = set()

    def all_exported() -> bool:
        exported.update(exported_sample_names(operator.metrics()))
        return not missing_names(queries, exported)

    with contextlib.suppress(TimeoutError):
        wait_until(all_exported, 60, 0.25, "every used operator metric in /metrics")
    missing = missing_names(queries, exported)
    assert not missing, (
        "metrics used but not exported by the running operator:\n" + "\n".join(sorted(missing))
        + f"\n--- operator log ---\n{operator.log_tail()}"
    )
