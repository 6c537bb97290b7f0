"""The monitoring overlay: well-formed, complete, and consistent with the rules and dashboards."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.dashboards.conftest import REPO_ROOT

OVERLAY = REPO_ROOT / "manifests" / "monitoring"
# The plain rules file is for Prometheus' rule_files, not a Kubernetes object.
NOT_RESOURCES = {"velocity.rules.yml", "kustomization.yaml"}


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((OVERLAY / name).read_text())
    assert isinstance(doc, dict)
    return doc


def _kubectl() -> str | None:
    """kubectl (which embeds kustomize): $VELOCITY_KUBECTL, the k8s harness' build, or PATH."""
    candidates = [os.environ.get("VELOCITY_KUBECTL", "")]
    bin_dir = subprocess.run(["bash", str(REPO_ROOT / "hack/k8s-build.sh"), "--bin-dir"],
                             capture_output=True, text=True, check=False).stdout.strip()
    if bin_dir:
        candidates.append(str(Path(bin_dir) / "kubectl"))
    candidates.append(shutil.which("kubectl") or "")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(_load("kustomization.yaml")["resources"])
    present = {p.name for p in OVERLAY.glob("*.yaml")} | {p.name for p in OVERLAY.glob("*.yml")}
    assert listed == present - NOT_RESOURCES


def test_engine_podmonitor_sets_the_labels_the_rules_and_panels_use() -> None:
    pm = _load("podmonitor-engine.yaml")
    assert pm["kind"] == "PodMonitor"
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert relabel["job"]["replacement"] == "velocity-engine"
    assert 'up{job="velocity-engine"}' in (OVERLAY / "velocity.rules.yml").read_text()
    assert relabel["cluster"]["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]


def test_operator_servicemonitor_selects_its_service() -> None:
    svc = _load("service-operator-metrics.yaml")
    sm = _load("servicemonitor-operator.yaml")
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
    assert svc["spec"]["ports"][0]["port"] == 8080


def test_kustomize_builds_the_overlay() -> None:
    kubectl = _kubectl()
    assert kubectl is not None, "no kubectl to run kustomize with: `make k8s-bins` builds one"
    out = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout))
    assert kinds == ["ConfigMap", "PodMonitor", "PrometheusRule", "Service", "ServiceMonitor"]
