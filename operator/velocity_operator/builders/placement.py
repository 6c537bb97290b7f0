"""Where the engine pods run and what they carry: the pod template's placement fields and
metadata, from spec.nodeSelector, spec.podAntiAffinity and spec.podTemplate (issue 17).

Precedence, so that the older fields keep working unchanged:
- nodeSelector comes from spec.nodeSelector only; podTemplate.affinity.nodeAffinity is
  passed through beside it (the scheduler requires both).
- spec.podAntiAffinity generates its one term (the cluster's pods on different nodes,
  Preferred by default); podTemplate.affinity.podAntiAffinity terms are appended after it
  in the same lists. podAntiAffinity None generates nothing, leaving only the user's.
- podTemplate.affinity.podAffinity, tolerations, priorityClassName and imagePullSecrets
  are passed through as written; a topology spread constraint without labelSelector gets
  the cluster's pod selector.
- pod labels: the user's, then the operator's (the CEL rules refuse overlaps; the
  operator's win if one gets through). Pod annotations: the operator's Prometheus
  annotations, then the user's (which may replace them), then the operator's vdb.io/
  hashes, which nothing replaces.

With no podTemplate the result is exactly what the StatefulSet builder produced before
podTemplate existed: an upgrade of the operator does not roll any pod.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..api.cluster import VelocityClusterSpec

__all__ = [
    "ENGINE_COMPONENT",
    "job_placement",
    "pod_annotations",
    "pod_labels",
    "pod_placement",
    "prometheus_annotations",
]

ENGINE_COMPONENT = "engine"  # app.kubernetes.io/component: what the PodMonitor selects


def prometheus_annotations() -> dict[str, str]:
    """Scrape hints for annotation-based Prometheus configurations."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(names.METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def pod_labels(cluster: str, spec: VelocityClusterSpec) -> dict[str, str]:
    """The labels of the pod template: podTemplate.labels, then the operator's."""
    user = dict(spec.pod_template.labels or {}) if spec.pod_template is not None else {}
    return {**user, **names.labels(cluster), "app.kubernetes.io/component": ENGINE_COMPONENT}


def pod_annotations(spec: VelocityClusterSpec, operator: dict[str, str]) -> dict[str, str]:
    """The annotations of the pod template: Prometheus hints, podTemplate.annotations, then
    `operator` (the config and certificate hashes)."""
    user = dict(spec.pod_template.annotations or {}) if spec.pod_template is not None else {}
    return {**prometheus_annotations(), **user, **operator}


def _anti_affinity_term(spec: VelocityClusterSpec, cluster: str) -> dict[str, list[Any]]:
    """The term spec.podAntiAffinity asks for, as required/preferred lists."""
    term = {
        "labelSelector": {"matchLabels": names.selector(cluster)},
        "topologyKey": "kubernetes.io/hostname",
    }
    if spec.pod_anti_affinity == "Required":
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    if spec.pod_anti_affinity == "Preferred":
        return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}
    return {}


def _affinity(spec: VelocityClusterSpec, cluster: str) -> dict[str, Any]:
    user = spec.pod_template.affinity if spec.pod_template is not None else None
    affinity: dict[str, Any] = {}
    if user is not None and user.node_affinity is not None and (node := user.node_affinity.to_api()):
        affinity["nodeAffinity"] = node
    if user is not None and user.pod_affinity is not None and (pod := user.pod_affinity.to_api()):
        affinity["podAffinity"] = pod
    anti: dict[str, list[Any]] = _anti_affinity_term(spec, cluster)
    extra = user.pod_anti_affinity.to_api() if user is not None and user.pod_anti_affinity is not None else {}
    for key, terms in extra.items():
        anti[key] = [*anti.get(key, []), *terms]
    if anti:
        affinity["podAntiAffinity"] = anti
    return affinity


def _spread(spec: VelocityClusterSpec, cluster: str) -> list[dict[str, Any]]:
    constraints = spec.pod_template.topology_spread_constraints if spec.pod_template is not None else None
    out = []
    for constraint in constraints or []:
        c = constraint.to_api()
        c.setdefault("labelSelector", {"matchLabels": names.selector(cluster)})
        out.append(c)
    return out


def pod_placement(spec: VelocityClusterSpec, cluster: str) -> dict[str, Any]:
    """The pod spec fields that decide where the pods run and how their image is pulled
    (only the ones that are set): affinity, nodeSelector, tolerations,
    topologySpreadConstraints, priorityClassName, imagePullSecrets."""
    fields: dict[str, Any] = {}
    if affinity := _affinity(spec, cluster):
        fields["affinity"] = affinity
    if spec.node_selector:
        fields["nodeSelector"] = dict(spec.node_selector)
    template = spec.pod_template
    if template is None:
        return fields
    if template.tolerations:
        fields["tolerations"] = [t.to_api() for t in template.tolerations]
    if spread := _spread(spec, cluster):
        fields["topologySpreadConstraints"] = spread
    if template.priority_class_name is not None:
        fields["priorityClassName"] = template.priority_class_name
    if template.image_pull_secrets:
        fields["imagePullSecrets"] = [s.to_api() for s in template.image_pull_secrets]
    return fields


def job_placement(spec: VelocityClusterSpec) -> dict[str, Any]:
    """The placement fields a backup or cleanup Job of the cluster takes from it: the nodes
    the engines may use (nodeSelector, node affinity, tolerations), priorityClassName and
    imagePullSecrets. The engines' pod (anti-)affinity and spread constraints are about
    the engine pods and are left out. Without them a Job could not run on a cluster whose
    nodes are all tainted, or pull the engine image from a private registry."""
    fields = {k: v for k, v in pod_placement(spec, "").items()
              if k in ("nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets")}
    user = spec.pod_template.affinity if spec.pod_template is not None else None
    if user is not None and user.node_affinity is not None and (node := user.node_affinity.to_api()):
        fields["affinity"] = {"nodeAffinity": node}
    return fields
