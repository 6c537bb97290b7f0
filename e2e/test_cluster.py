"""What every Velocity test cluster must offer: a Ready node, a default StorageClass,
Service DNS with stable StatefulSet names; and, on the local cluster (--isolated-dns),
no DNS for names outside the cluster."""

from __future__ import annotations

import json

import pytest

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY

RESOLVE = """
import json, socket, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = socket.gethostbyname(name)
    except OSError as exc:
        out[name] = "error: %s" % exc
print(json.dumps(out))
"""


def test_nodes_ready(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    assert nodes, "the cluster has no nodes"
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]


def test_default_storage_class(kubectl: Kubectl) -> None:
    classes = kubectl.json("get", "storageclasses")["items"]
    defaults = [c["metadata"]["name"] for c in classes
                if c["metadata"].get("annotations", {}).get(
                    "storageclass.kubernetes.io/is-default-class") == "true"]
    assert len(defaults) == 1, f"expected one default StorageClass, got {defaults}"


@pytest.fixture(scope="module")
def dns_answers(namespace: Kubectl) -> tuple[str, dict[str, str]]:
    """Deploy a one-pod StatefulSet behind a headless Service; resolve names inside it.

    Returns the pod's IP and {name: address or "error: ..."} once the pod's own stable
    name resolves (the endpoints controller and DNS cache catch up within seconds).
    """
    ns = namespace.namespace
    labels = {"app.kubernetes.io/name": "dns-probe"}
    namespace.apply(
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "dns-probe", "namespace": ns},
         "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True,
                  "ports": [{"name": "x", "port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "dns-probe", "namespace": ns},
         "spec": {"serviceName": "dns-probe", "replicas": 1,
                  "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "sleep", "image": ENGINE_IMAGE,
                                      "imagePullPolicy": PULL_POLICY,
                                      "command": ["python3", "-c",
                                                  "import time; time.sleep(3600)"]}]}}}},
    )
    wait_for(lambda: namespace.pod_ready("dns-probe-0"), timeout=180,
             what="pod dns-probe-0 to become Ready", interval=2)
    pod_ip: str = namespace.json("get", "pod", "dns-probe-0")["status"]["podIP"]
    stable = f"dns-probe-0.dns-probe.{ns}.svc.cluster.local"
    names = ["kubernetes.default.svc.cluster.local", stable, "dns-probe-0.dns-probe", "example.com"]

    def resolved() -> dict[str, str] | None:
        out: dict[str, str] = json.loads(namespace.exec("dns-probe-0", "python3", "-c", RESOLVE, *names))
        return out if out[stable] == pod_ip else None

    answers = wait_for(resolved, timeout=60, what="the pod's stable DNS name", interval=2)
    return pod_ip, answers


def test_service_dns(dns_answers: tuple[str, dict[str, str]]) -> None:
    pod_ip, answers = dns_answers
    assert not answers["kubernetes.default.svc.cluster.local"].startswith("error"), answers
    assert answers["dns-probe-0.dns-probe"] == pod_ip, "the pod's search path does not reach its Service"


def test_outside_names_are_not_resolved(dns_answers: tuple[str, dict[str, str]], isolated_dns: bool) -> None:
    if not isolated_dns:
        pytest.skip("not checked: pass --isolated-dns for a cluster whose DNS must not forward (make e2e does)")
    _, answers = dns_answers
    assert answers["example.com"].startswith("error"), f"cluster DNS resolved an outside name: {answers}"
