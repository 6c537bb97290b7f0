"""spec.podTemplate and spec.service in the built objects (issue 17): placement fields
passed through, merged with spec.nodeSelector and spec.podAntiAffinity as documented,
metadata precedence, and no change at all when they are unset."""

from __future__ import annotations

from typing import Any

import pytest
from velocity_operator import names
from velocity_operator.api.pod_template import (
    RESERVED_ANNOTATION_PREFIX,
    RESERVED_LABEL_KEYS,
    RESERVED_LABEL_PREFIX,
    PodTemplate,
)
from velocity_operator.builders import placement, services
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner

from .conftest import make_spec

SELECTOR = {"app.kubernetes.io/name": "velocity", "app.kubernetes.io/instance": "alpha"}
HOSTNAME_TERM = {"labelSelector": {"matchLabels": SELECTOR}, "topologyKey": "kubernetes.io/hostname"}
# What the pod spec held before spec.podTemplate existed (besides the containers' own fields).
LEGACY_POD_FIELDS = {"initContainers", "containers", "volumes", "serviceAccountName",
                     "automountServiceAccountToken", "enableServiceLinks", "terminationGracePeriodSeconds",
                     "securityContext", "affinity"}


def _template(owner: Owner, **spec: Any) -> dict[str, Any]:
    template: dict[str, Any] = sts.statefulset(owner, make_spec(**spec), config_hash="c0ffee",
                                               tls_hash="7157")["spec"]["template"]
    return template


def _pod(owner: Owner, **spec: Any) -> dict[str, Any]:
    pod: dict[str, Any] = _template(owner, **spec)["spec"]
    return pod


def test_unset_pod_template_adds_nothing(owner: Owner) -> None:
    """An operator upgrade must not roll existing clusters: without podTemplate the template
    is exactly what it was (the generated anti-affinity term, the operator's metadata)."""
    template = _template(owner)
    assert set(template["spec"]) == LEGACY_POD_FIELDS
    assert template["spec"]["affinity"] == {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": HOSTNAME_TERM}]}}
    assert template["metadata"]["labels"] == {**names.labels("alpha"), "app.kubernetes.io/component": "engine"}
    assert template["metadata"]["annotations"] == {
        "vdb.io/config-hash": "c0ffee", "vdb.io/tls-hash": "7157", "prometheus.io/scrape": "true",
        "prometheus.io/port": "9105", "prometheus.io/path": "/metrics"}
    assert _template(owner, podTemplate={}) == template
    assert "affinity" not in _pod(owner, podAntiAffinity="None")


def test_tolerations_priority_and_pull_secrets_pass_through(owner: Owner) -> None:
    pod = _pod(owner, podTemplate={
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "velocity", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 10},
            {"operator": "Exists"},
        ],
        "priorityClassName": "velocity-critical",
        "imagePullSecrets": [{"name": "registry-creds"}],
    })
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "velocity", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 10},
        {"operator": "Exists"},
    ]
    assert pod["priorityClassName"] == "velocity-critical"
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]


NODE_AFFINITY = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]}]}]},
    "preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}
ZONE_TERM = {"labelSelector": {"matchLabels": SELECTOR}, "topologyKey": "topology.kubernetes.io/zone"}


def test_node_affinity_applies_beside_node_selector(owner: Owner) -> None:
    pod = _pod(owner, nodeSelector={"pool": "db"}, podTemplate={"affinity": {"nodeAffinity": NODE_AFFINITY}})
    assert pod["nodeSelector"] == {"pool": "db"}
    assert pod["affinity"]["nodeAffinity"] == NODE_AFFINITY


def test_pod_affinity_passes_through(owner: Owner) -> None:
    affinity = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
        "labelSelector": {"matchLabels": {"app": "shop"}}, "topologyKey": "topology.kubernetes.io/zone",
        "namespaceSelector": {}}}]}
    assert _pod(owner, podTemplate={"affinity": {"podAffinity": affinity}})["affinity"]["podAffinity"] == affinity


@pytest.mark.parametrize("mode, generated", [
    ("Preferred", {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                                                                         "podAffinityTerm": HOSTNAME_TERM}]}),
    ("Required", {"requiredDuringSchedulingIgnoredDuringExecution": [HOSTNAME_TERM]}),
    ("None", {}),
])
def test_anti_affinity_terms_are_added_after_the_generated_one(owner: Owner, mode: str,
                                                               generated: dict[str, list[Any]]) -> None:
    user = {"requiredDuringSchedulingIgnoredDuringExecution": [ZONE_TERM],
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": ZONE_TERM}]}
    anti = _pod(owner, podAntiAffinity=mode, podTemplate={"affinity": {"podAntiAffinity": user}})["affinity"][
        "podAntiAffinity"]
    for key, terms in user.items():
        assert anti[key] == [*generated.get(key, []), *terms], key


def test_spread_constraints_count_the_cluster_pods_unless_told_otherwise(owner: Owner) -> None:
    pod = _pod(owner, podTemplate={"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "minDomains": 3},
        {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"tier": "data"}}, "nodeTaintsPolicy": "Honor"},
    ]})
    assert pod["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "minDomains": 3, "labelSelector": {"matchLabels": SELECTOR}},
        {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"tier": "data"}}, "nodeTaintsPolicy": "Honor"},
    ]


def test_metadata_precedence(owner: Owner) -> None:
    meta = _template(owner, podTemplate={
        "labels": {"team": "payments", "sidecar.istio.io/inject": "false"},
        "annotations": {"prometheus.io/scrape": "false", "example.com/owner": "payments"},
    })["metadata"]
    assert meta["labels"]["team"] == "payments" and meta["labels"]["sidecar.istio.io/inject"] == "false"
    assert meta["labels"]["app.kubernetes.io/instance"] == "alpha"
    assert meta["annotations"]["prometheus.io/scrape"] == "false"  # the user's replaces the operator's
    assert meta["annotations"]["example.com/owner"] == "payments"
    assert meta["annotations"]["vdb.io/config-hash"] == "c0ffee"


def test_operator_metadata_wins_if_a_reserved_key_gets_through(owner: Owner) -> None:
    """The API server refuses these keys (CEL); a spec built without it still cannot move
    the pods out of the operator's selectors nor hide a configuration change."""
    spec = make_spec().model_copy(update={"pod_template": PodTemplate.model_construct(
        labels={"app.kubernetes.io/instance": "other", "vdb.io/role": "primary"},
        annotations={"vdb.io/config-hash": "forged"})})
    meta = sts.statefulset(owner, spec, config_hash="c0ffee")["spec"]["template"]["metadata"]
    assert meta["labels"]["app.kubernetes.io/instance"] == "alpha"
    assert meta["annotations"]["vdb.io/config-hash"] == "c0ffee"


def test_reserved_keys_cover_what_the_operator_and_statefulset_controller_set(owner: Owner) -> None:
    for key in placement.pod_labels("alpha", make_spec()):
        assert key in RESERVED_LABEL_KEYS, key
    assert names.ROLE_LABEL.startswith(RESERVED_LABEL_PREFIX)
    for key in (sts.CONFIG_HASH_ANNOTATION, sts.TLS_HASH_ANNOTATION):
        assert key.startswith(RESERVED_ANNOTATION_PREFIX)
    assert "controller-revision-hash" in RESERVED_LABEL_KEYS  # the rollout compares it


@pytest.mark.parametrize("pod_template", [
    {"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
    {"affinity": {"nodeAffinity": NODE_AFFINITY}},
    {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [ZONE_TERM]}}},
    {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                    "whenUnsatisfiable": "ScheduleAnyway"}]},
    {"priorityClassName": "high"},
    {"imagePullSecrets": [{"name": "creds"}]},
    {"labels": {"team": "a"}},
    {"annotations": {"example.com/a": "b"}},
])
def test_every_field_changes_the_pod_template(owner: Owner, pod_template: dict[str, Any]) -> None:
    """The StatefulSet's revision (controller-revision-hash, which controllers/rollout.py
    compares) is a hash of the whole template: a changed field means a rollout."""
    assert _template(owner, podTemplate=pod_template) != _template(owner)


def test_statefulset_selector_ignores_pod_labels(owner: Owner) -> None:
    obj = sts.statefulset(owner, make_spec(podTemplate={"labels": {"team": "a"}}), config_hash="c")
    assert obj["spec"]["selector"] == {"matchLabels": SELECTOR}  # immutable: must never change


# -- spec.service --------------------------------------------------------------------------

def test_client_service_defaults_to_cluster_ip_with_metrics(owner: Owner) -> None:
    svc = services.client_service(owner, make_spec().service)
    assert svc == services.client_service(owner)
    assert svc["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in svc["spec"]["ports"]] == ["vproto", "metrics"]
    assert "annotations" not in svc["metadata"]


@pytest.mark.parametrize("type_", ["NodePort", "LoadBalancer"])
def test_exposed_service_publishes_the_client_port_only(owner: Owner, type_: str) -> None:
    spec = make_spec(service={"type": type_, "annotations": {"service.beta.kubernetes.io/x": "1"}})
    svc = services.client_service(owner, spec.service)
    assert svc["spec"]["type"] == type_
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("vproto", 2005)]
    assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/x": "1"}
    assert svc["spec"]["selector"][names.ROLE_LABEL] == "primary"


def test_headless_service_is_not_affected(owner: Owner) -> None:
    svc = services.headless_service(owner)
    assert svc["spec"]["clusterIP"] == "None" and "type" not in svc["spec"]


def test_backup_and_cleanup_jobs_take_the_clusters_node_placement_only(owner: Owner) -> None:
    """A Job must be able to run where the engines may (tainted nodes, node affinity, a
    private registry), but the engines' anti-affinity and spread are not about it."""
    from velocity_operator.builders.backup_job import PvcLocation, backup_job, cleanup_job

    toleration = {"key": "dedicated", "operator": "Equal", "value": "velocity", "effect": "NoSchedule"}
    node_affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}
    spec = make_spec(nodeSelector={"pool": "db"}, podTemplate={
        "tolerations": [toleration], "priorityClassName": "critical",
        "imagePullSecrets": [{"name": "registry"}], "affinity": {"nodeAffinity": node_affinity},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]})
    fields = placement.job_placement(spec)
    assert fields == {"nodeSelector": {"pool": "db"}, "tolerations": [toleration], "priorityClassName": "critical",
                      "imagePullSecrets": [{"name": "registry"}], "affinity": {"nodeAffinity": node_affinity}}
    location = PvcLocation("alpha-backups", "velocity/alpha/b1.vsnap")
    jobs = [backup_job(owner, cluster="alpha", backup="b1", location=location, image="img", tls=True,
                       placement=fields),
            cleanup_job(owner, cluster="alpha", backup="b1", location=location, image="img", placement=fields)]
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        assert {k: pod[k] for k in fields} == fields
        assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert placement.job_placement(make_spec()) == {}
