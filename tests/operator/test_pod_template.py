"""spec.podTemplate and spec.service on a real kube-apiserver (issue 17): what the API
server accepts and refuses, what `kubectl explain` says, the StatefulSet, its pods and the
client Service built with them, and a change rolled out one pod at a time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for

TOLERATIONS = [
    {"key": "dedicated", "operator": "Equal", "value": "velocity", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 15},
]
ZONE_TERM = {"labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "pt"}},
             "topologyKey": "topology.kubernetes.io/zone"}
PRIORITY_CLASS = "velocity-test-critical"
POD_TEMPLATE: dict[str, Any] = {
    "labels": {"team": "payments"},
    "annotations": {"example.com/owner": "payments", "prometheus.io/scrape": "false"},
    "tolerations": TOLERATIONS,
    "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node-role.example.com/db", "operator": "Exists"}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": ZONE_TERM}]},
    },
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "priorityClassName": PRIORITY_CLASS,
    "imagePullSecrets": [{"name": "registry-creds"}],
}


def _explain(kubectl: Kubectl, path: str) -> str:
    # The CRD's OpenAPI is published a moment after it is Established.
    return wait_for(f"kubectl explain {path}",
                    lambda: (d := kubectl.run("explain", path, check=False)).returncode == 0
                    and " ".join(d.stdout.split()))  # one line: kubectl wraps descriptions


def test_explained(kubectl: Kubectl, crds: None) -> None:
    assert "Placement and metadata of the engine pods" in _explain(kubectl, "vc.spec.podTemplate")
    assert "tainted nodes" in _explain(kubectl, "vc.spec.podTemplate.tolerations")
    anti = _explain(kubectl, "vc.spec.podTemplate.affinity.podAntiAffinity")
    assert "added to the" in anti and "spec.podAntiAffinity" in anti
    assert "both must hold" in _explain(kubectl, "vc.spec.nodeSelector")
    assert "counts the cluster's" in _explain(kubectl, "vc.spec.podTemplate.topologySpreadConstraints")
    assert "labelSelector" in _explain(kubectl, "vc.spec.podTemplate.topologySpreadConstraints")
    assert "private registry" in _explain(kubectl, "vc.spec.podTemplate.imagePullSecrets")
    service = _explain(kubectl, "vc.spec.service.type")
    assert "LoadBalancer" in service and "client port 2005 only" in service
    assert "load balancer" in _explain(kubectl, "vc.spec.service.annotations")


def test_full_spec_is_accepted_and_defaults_apply(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("pt", ns, podTemplate=POD_TEMPLATE,
                          service={"type": "LoadBalancer", "annotations": {"example.com/lb": "internal"}}))
    obj = kubectl.get("vc", "pt", ns)
    assert obj is not None
    assert obj["spec"]["podTemplate"] == POD_TEMPLATE  # nothing pruned
    kubectl.apply(cluster("plain", ns))
    plain = kubectl.get("vc", "plain", ns)
    assert plain is not None and plain["spec"]["service"] == {"type": "ClusterIP"}
    assert "podTemplate" not in plain["spec"]


@pytest.mark.parametrize("spec, message", [
    ({"podTemplate": {"labels": {"app.kubernetes.io/instance": "other"}}},
     "podTemplate.labels cannot set the labels the operator selects its pods by"),
    ({"podTemplate": {"labels": {"vdb.io/role": "primary"}}}, "nor vdb.io/ labels"),
    ({"podTemplate": {"labels": {"controller-revision-hash": "x"}}}, "cannot set the labels"),
    ({"podTemplate": {"labels": {"bad key": "x"}}}, "every key must be a qualified name"),
    ({"podTemplate": {"labels": {"team": "not a label value"}}}, "spec.podTemplate.labels.team"),
    ({"podTemplate": {"annotations": {"vdb.io/config-hash": "x"}}},
     "podTemplate.annotations cannot set vdb.io/ annotations"),
    ({"service": {"annotations": {"vdb.io/x": "y"}}}, "service.annotations cannot set vdb.io/ annotations"),
    ({"service": {"annotations": {"-bad": "y"}}}, "every key must be a qualified name"),
    ({"service": {"type": "ExternalName"}}, 'supported values: "ClusterIP", "NodePort", "LoadBalancer"'),
    ({"podTemplate": {"tolerations": [{"value": "x"}]}}, "a toleration without a key must use operator Exists"),
    ({"podTemplate": {"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}},
     "a toleration with operator Exists takes no value"),
    ({"podTemplate": {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}},
     "tolerationSeconds needs effect NoExecute"),
    ({"podTemplate": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}},
     'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ({"podTemplate": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": []}}}}}, "nodeSelectorTerms"),
    ({"podTemplate": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "podAffinityTerm": ZONE_TERM}]}}}}, "should be greater than or equal to 1"),
    ({"podTemplate": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {}}]}}}}, "topologyKey: Required value"),
    ({"podTemplate": {"topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone",
                                                     "whenUnsatisfiable": "DoNotSchedule"}]}}, "maxSkew"),
    ({"podTemplate": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                     "whenUnsatisfiable": "Never"}]}},
     'supported values: "DoNotSchedule", "ScheduleAnyway"'),
    ({"podTemplate": {"priorityClassName": "Not_A_Name"}}, "spec.podTemplate.priorityClassName"),
    ({"podTemplate": {"imagePullSecrets": [{}]}}, "name: Required value"),
])
def test_invalid_templates_are_refused(kubectl: Kubectl, crds: None, ns: str, spec: dict[str, Any],
                                       message: str) -> None:
    done = kubectl.apply(cluster("bad", ns, **spec), check=False)
    assert done.returncode != 0, "the API server accepted an invalid VelocityCluster"
    assert message in done.stderr, done.stderr


def test_statefulset_pods_and_service_carry_them(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": PRIORITY_CLASS},
                   "value": 1000000, "description": "tests/operator/test_pod_template.py"})
    kubectl.apply(cluster("pt", ns, replicas=2, nodeSelector={"pool": "db"}, podTemplate=POD_TEMPLATE,
                          service={"type": "NodePort", "annotations": {"example.com/lb": "internal"}}))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "pt", ns))
    template = sts["spec"]["template"]
    pod_spec = template["spec"]
    assert pod_spec["tolerations"] == TOLERATIONS
    assert pod_spec["nodeSelector"] == {"pool": "db"}
    assert pod_spec["affinity"]["nodeAffinity"] == POD_TEMPLATE["affinity"]["nodeAffinity"]
    # The generated term (Preferred: one pod per node) first, then the user's.
    preferred = pod_spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [t["podAffinityTerm"]["topologyKey"] for t in preferred] == ["kubernetes.io/hostname",
                                                                        "topology.kubernetes.io/zone"]
    [spread] = pod_spec["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "velocity",
                                                       "app.kubernetes.io/instance": "pt"}}
    assert pod_spec["priorityClassName"] == PRIORITY_CLASS
    assert pod_spec["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert template["metadata"]["labels"]["team"] == "payments"
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "pt"
    annotations = template["metadata"]["annotations"]
    assert annotations["example.com/owner"] == "payments" and annotations["prometheus.io/scrape"] == "false"
    assert "vdb.io/config-hash" in annotations
    assert sts["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "velocity",
                                                      "app.kubernetes.io/instance": "pt"}

    # The StatefulSet controller made pods from it: the API server's Pod validation (and the
    # Priority admission plugin, which resolves the class) accepted every field.
    pods = wait_for("2 pods", lambda: (p := kubectl.items("pods", ns, "app.kubernetes.io/instance=pt"))
                    and len(p) == 2 and p)
    for pod in pods:
        assert pod["spec"]["tolerations"][:2] == TOLERATIONS
        assert pod["spec"]["priorityClassName"] == PRIORITY_CLASS and pod["spec"]["priority"] == 1000000
        assert pod["metadata"]["labels"]["team"] == "payments"

    svc = wait_for("NodePort Service", lambda: (s := kubectl.get("service", "pt", ns))
                   and s["spec"]["type"] == "NodePort" and s)
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("vproto", 2005)]
    assert svc["spec"]["ports"][0]["nodePort"] > 0
    assert svc["metadata"]["annotations"]["example.com/lb"] == "internal"
    assert svc["spec"]["selector"]["vdb.io/role"] == "primary"
    headless = kubectl.get("service", "pt-headless", ns)
    assert headless is not None and headless["spec"]["clusterIP"] == "None"


def test_service_type_and_annotations_follow_the_spec(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("sv", ns, service={"type": "LoadBalancer", "annotations": {"example.com/a": "1"}}))
    wait_for("LoadBalancer", lambda: (s := kubectl.get("service", "sv", ns)) and s["spec"]["type"] == "LoadBalancer")
    kubectl.run("annotate", "service", "sv", "-n", ns, "team.example/owner=payments")  # not the operator's
    # Back to ClusterIP: the node ports go, the metrics port and the plain annotations return.
    kubectl.apply(cluster("sv", ns, service={"type": "ClusterIP"}))
    svc = wait_for("ClusterIP again", lambda: (s := kubectl.get("service", "sv", ns))
                   and s["spec"]["type"] == "ClusterIP" and s)
    assert [(p["name"], p.get("nodePort")) for p in svc["spec"]["ports"]] == [("vproto", None), ("metrics", None)]
    annotations = svc["metadata"].get("annotations") or {}
    assert "example.com/a" not in annotations
    assert annotations.get("team.example/owner") == "payments"


def test_unset_or_default_fields_change_nothing(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    """Writing the defaults out (or an empty podTemplate) leaves the StatefulSet as it was:
    no rollout of existing clusters."""
    kubectl.apply(cluster("df", ns))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "df", ns))
    kubectl.apply(cluster("df", ns, podTemplate={}, service={"type": "ClusterIP"},
                          replication={"leaseDurationSeconds": 5, "leaseRenewIntervalMilliseconds": 1000}))
    generation = (kubectl.get("vc", "df", ns) or {})["metadata"]["generation"]
    wait_for("the new generation observed", lambda: ((kubectl.get("vc", "df", ns) or {}).get("status") or {})
             .get("observedGeneration") == generation)
    again = kubectl.get("statefulset", "df", ns)
    assert again is not None
    assert again["metadata"]["generation"] == sts["metadata"]["generation"]
    assert again["spec"]["template"] == sts["spec"]["template"]


def _events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    items = json.loads(kubectl.run("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [e["message"] for e in items if e["reason"] == reason]


def roll(kubectl: Kubectl, ns: str, selector: str, pods: int, patch: dict[str, Any]) -> list[str]:
    """Apply `patch` to the cluster and play the kubelet (recreated pods become ready)
    until every pod was restarted once; returns the restart order."""
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pods", ns, selector)}
    name = selector.split("=", 1)[1]
    kubectl.run("patch", "vc", name, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    order: list[str] = []

    def step() -> bool:
        current = kubectl.items("pods", ns, selector)
        assert len(current) >= pods - 1, "more than one pod down at a time"
        for pod in current:
            pod_name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
            if uids.get(pod_name) != uid:
                uids[pod_name] = uid
                order.append(pod_name)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ready = {"metadata": {"uid": uid}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}}
            kubectl.run("patch", "pod", pod_name, "-n", ns, "--subresource=status", "--type=merge",
                        "-p", json.dumps(ready), check=False)
        return len(order) == pods

    wait_for("every pod restarted", step, timeout=120, interval=0.5)
    return order


def test_a_template_change_rolls_the_pods(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    selector = "app.kubernetes.io/instance=ro"
    kubectl.apply(cluster("ro", ns, replicas=2))
    wait_for("2 pods", lambda: len(kubectl.items("pods", ns, selector)) == 2)
    mark_pods_ready(kubectl, ns, selector)
    kubectl.run("wait", "--for=condition=Ready", "vc/ro", "-n", ns, "--timeout=30s")
    revision = (kubectl.get("statefulset", "ro", ns) or {})["status"]["updateRevision"]

    order = roll(kubectl, ns, selector, 2, {"spec": {"podTemplate": {"tolerations": TOLERATIONS}}})
    assert sorted(order) == ["ro-0", "ro-1"], order
    sts = kubectl.get("statefulset", "ro", ns)
    assert sts is not None and sts["status"]["updateRevision"] != revision
    for pod in kubectl.items("pods", ns, selector):
        assert pod["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
        assert pod["spec"]["tolerations"][:2] == TOLERATIONS
    assert any("on the new pod template" in m for m in _events(kubectl, ns, "RollingUpdate"))
    wait_for("phase Ready after the rollout",
             lambda: ((kubectl.get("vc", "ro", ns) or {}).get("status") or {}).get("phase") == "Ready", timeout=30)
