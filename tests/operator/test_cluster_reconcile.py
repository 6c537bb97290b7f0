"""The operator reconciling VelocityClusters on a real API server."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from velocity_operator import tlsutil
from velocity_operator.builders.secrets import server_dns_names

from .conftest import Kubectl, OperatorProcess, cluster, condition, mark_pods_ready, wait_for

SELECTOR = "app.kubernetes.io/instance={name}"


def _owned(obj: dict[str, Any], cluster_obj: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences", [])
    return any(r["uid"] == cluster_obj["metadata"]["uid"] and r.get("controller") for r in refs)


def _wait_sts(kubectl: Kubectl, ns: str, name: str, pred: Any = bool, timeout: float = 30) -> dict[str, Any]:
    return wait_for(f"StatefulSet {name}", lambda: (s := kubectl.get("statefulset", name, ns)) and pred(s) and s,
                    timeout=timeout)


def test_creates_every_object_owned_by_the_cluster(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("alpha", ns, replicas=3, storage={"aof": {"size": "1Gi"}, "snapshots": {"size": "2Gi"}}))
    sts = _wait_sts(kubectl, ns, "alpha")
    vc = kubectl.get("vc", "alpha", ns)
    assert vc is not None
    assert sts["spec"]["replicas"] == 3
    sizes = {t["metadata"]["name"]: t["spec"]["resources"]["requests"]["storage"]
             for t in sts["spec"]["volumeClaimTemplates"]}
    assert sizes == {"aof": "1Gi", "snapshots": "2Gi"}
    objects = {
        ("service", "alpha"), ("service", "alpha-headless"), ("secret", "alpha-auth"), ("secret", "alpha-ca"),
        ("secret", "alpha-ca-key"), ("secret", "alpha-tls"), ("configmap", "alpha-config"),
        ("poddisruptionbudget", "alpha"), ("statefulset", "alpha"),
    }
    for kind, name in objects:
        obj = wait_for(f"{kind}/{name}", lambda k=kind, n=name: kubectl.get(k, n, ns))
        assert _owned(obj, vc), f"{kind}/{name} is not owned by the cluster"

    svc = kubectl.get("service", "alpha", ns)
    assert svc is not None and 2005 in [p["port"] for p in svc["spec"]["ports"]]
    token = kubectl.get("secret", "alpha-auth", ns)
    assert token is not None and len(base64.b64decode(token["data"]["token"])) >= 32
    ca = kubectl.get("secret", "alpha-ca", ns)
    assert ca is not None and set(ca["data"]) == {"ca.crt"}
    # The kube-controller-manager's StatefulSet controller made the pods and claims.
    pods = wait_for("3 pods", lambda: len(kubectl.items("pods", ns, SELECTOR.format(name="alpha"))) == 3)
    assert pods

    vc = wait_for("status", lambda: (o := kubectl.get("vc", "alpha", ns)) and o.get("status", {}).get("phase") and o)
    status = vc["status"]
    assert status["phase"] in ("Provisioning", "Pending")
    assert "currentPrimary" not in status  # no engine runs in this tier: nobody holds the Lease
    assert status["observedGeneration"] == vc["metadata"]["generation"]
    ready = condition(vc, "Ready")
    assert ready is not None and ready["status"] == "False"
    assert status["certificate"]["secretName"] == "alpha-tls"

    events = kubectl.run("get", "events", "-n", ns, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"TokenCreated", "CACreated", "CertificateIssued", "StatefulSetCreated"} <= reasons
    assert "velocity_operator_reconciles_total" in operator.metrics()


def test_ready_when_pods_are_ready_and_kubectl_wait_works(kubectl: Kubectl, operator: OperatorProcess,
                                                          ns: str) -> None:
    kubectl.apply(cluster("beta", ns, replicas=2))
    wait_for("2 pods", lambda: len(kubectl.items("pods", ns, SELECTOR.format(name="beta"))) == 2)
    assert mark_pods_ready(kubectl, ns, SELECTOR.format(name="beta")) == 2
    kubectl.run("wait", "--for=condition=Ready", "vc/beta", "-n", ns, "--timeout=30s")
    vc = kubectl.get("vc", "beta", ns)
    assert vc is not None
    assert vc["status"]["phase"] == "Ready"
    assert vc["status"]["readyReplicas"] == 2
    table = kubectl.run("get", "vc", "-n", ns).stdout
    assert table.split("\n")[0].split() == ["NAME", "REPLICAS", "READY", "PRIMARY", "PHASE", "AGE"]
    # No engine runs here, so no pod holds the Lease: PRIMARY is blank (test_replication_wiring
    # shows it filled in from the Lease).
    assert table.split("\n")[1].split()[:4] == ["beta", "2", "2", "Ready"]
    metrics = operator.metrics()
    assert 'velocity_operator_managed_clusters{phase="Ready"}' in metrics
    assert f'velocity_operator_certificate_expiry_timestamp_seconds{{cluster="beta",namespace="{ns}"}}' in metrics


def test_idempotent_and_drift_corrected(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("gamma", ns))
    wait_for("status", lambda: (o := kubectl.get("vc", "gamma", ns)) and o.get("status", {}).get("phase"))
    kinds = [("configmap", "gamma-config"), ("service", "gamma"), ("service", "gamma-headless"),
             ("secret", "gamma-auth"), ("secret", "gamma-tls"), ("poddisruptionbudget", "gamma"),
             ("serviceaccount", "gamma-engine"), ("role", "gamma-engine"), ("rolebinding", "gamma-engine")]

    def versions() -> dict[tuple[str, str], str]:
        out = {}
        for kind, name in kinds:
            obj = kubectl.get(kind, name, ns)
            assert obj is not None
            out[(kind, name)] = obj["metadata"]["resourceVersion"]
        return out

    # Several resync periods pass: re-applying identical objects changes nothing.
    before = versions()
    token = kubectl.get("secret", "gamma-auth", ns)
    start = _reconciles(operator)
    wait_for("more resyncs", lambda: _reconciles(operator) >= start + 3, timeout=30)
    assert versions() == before
    assert kubectl.get("secret", "gamma-auth", ns) == token

    # Drift: someone edits a field the operator owns, and deletes an object.
    kubectl.run("patch", "configmap", "gamma-config", "-n", ns, "--type=merge",
                "-p", json.dumps({"data": {"velocity.toml": "port = 1\n"}}))
    kubectl.run("delete", "service", "gamma", "-n", ns)
    wait_for("config restored", lambda: "port = 2005" in (kubectl.get("configmap", "gamma-config", ns) or {})
             .get("data", {}).get("velocity.toml", ""), timeout=30)
    wait_for("service recreated", lambda: kubectl.get("service", "gamma", ns), timeout=30)


def _reconciles(operator: OperatorProcess) -> float:
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith('velocity_operator_reconciles_total{resource="VelocityCluster"'):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_never_fights_fields_it_does_not_own(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("delta", ns))
    _wait_sts(kubectl, ns, "delta")
    # A user's annotation and label on the Service, and a change another manager makes.
    kubectl.run("annotate", "service", "delta", "-n", ns, "team.example/owner=payments")
    kubectl.run("label", "statefulset", "delta", "-n", ns, "cost-center=42")
    start = _reconciles(operator)
    wait_for("two resyncs", lambda: _reconciles(operator) >= start + 2, timeout=30)
    svc = kubectl.get("service", "delta", ns)
    sts = kubectl.get("statefulset", "delta", ns)
    assert svc is not None and svc["metadata"]["annotations"]["team.example/owner"] == "payments"
    assert sts is not None and sts["metadata"]["labels"]["cost-center"] == "42"
    shown = json.loads(kubectl.run("get", "statefulset", "delta", "-n", ns, "-o", "json",
                                   "--show-managed-fields").stdout)
    managers = {m["manager"]: m["operation"] for m in shown["metadata"]["managedFields"]}
    assert managers["velocity-operator"] == "Apply"  # server-side apply, its own field manager


def test_scaling_and_config_change_update_the_statefulset(kubectl: Kubectl, operator: OperatorProcess,
                                                          ns: str) -> None:
    kubectl.apply(cluster("eps", ns))
    sts = _wait_sts(kubectl, ns, "eps")
    old_hash = sts["spec"]["template"]["metadata"]["annotations"]["vdb.io/config-hash"]
    kubectl.run("scale", "vc/eps", "-n", ns, "--replicas=3")
    _wait_sts(kubectl, ns, "eps", lambda s: s["spec"]["replicas"] == 3)
    # A restart-only key rolls the pods (new hash on the template) ...
    kubectl.run("patch", "vc", "eps", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"config": {
        "maxValueBytes": 4096}}}))
    sts = _wait_sts(kubectl, ns, "eps", lambda s: s["spec"]["template"]["metadata"]["annotations"]
                    ["vdb.io/config-hash"] != old_hash)
    cm = kubectl.get("configmap", "eps-config", ns)
    assert cm is not None and "max_value_bytes = 4096" in cm["data"]["velocity.toml"]
    template = sts["spec"]["template"]
    # ... a live one changes the ConfigMap only (the engines reload it).
    kubectl.run("patch", "vc", "eps", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"config": {
        "maxConnections": 500}}}))
    wait_for("max_connections in the ConfigMap", lambda: "max_connections = 500" in
             ((kubectl.get("configmap", "eps-config", ns) or {}).get("data") or {}).get("velocity.toml", ""))
    kubectl.run("scale", "vc/eps", "-n", ns, "--replicas=1")
    # A reconcile after the config change: the template it applied is the one before it.
    sts = _wait_sts(kubectl, ns, "eps", lambda s: s["spec"]["replicas"] == 1)
    assert sts["spec"]["template"] == template


def test_storage_shrink_is_refused_in_status(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("zeta", ns, storage={"aof": {"size": "2Gi"}}))
    _wait_sts(kubectl, ns, "zeta")
    kubectl.apply(cluster("zeta", ns, storage={"aof": {"size": "1Gi"}}))
    vc = wait_for("Degraded", lambda: (o := kubectl.get("vc", "zeta", ns))
                  and (condition(o, "Degraded") or {}).get("status") == "True" and o, timeout=30)
    degraded = condition(vc, "Degraded")
    assert degraded is not None and degraded["reason"] == "StorageShrinkRefused"
    assert "cannot shrink" in degraded["message"]
    assert vc["status"]["phase"] == "Degraded"
    sts = kubectl.get("statefulset", "zeta", ns)
    assert sts is not None
    sizes = {t["metadata"]["name"]: t["spec"]["resources"]["requests"]["storage"]
             for t in sts["spec"]["volumeClaimTemplates"]}
    assert sizes["aof"] == "2Gi"


def test_restart_converges(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("eta", ns))
    _wait_sts(kubectl, ns, "eta")
    operator.stop()
    try:
        kubectl.run("patch", "vc", "eta", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}}))
        kubectl.run("delete", "configmap", "eta-config", "-n", ns)
    finally:
        operator.start()
    _wait_sts(kubectl, ns, "eta", lambda s: s["spec"]["replicas"] == 2)
    wait_for("config recreated", lambda: kubectl.get("configmap", "eta-config", ns))
    tls = kubectl.get("secret", "eta-tls", ns)
    assert tls is not None
    start = _reconciles(operator)
    wait_for("two resyncs", lambda: _reconciles(operator) >= start + 2, timeout=30)
    again = kubectl.get("secret", "eta-tls", ns)
    assert again is not None and again["data"] == tls["data"], "a restart must not re-issue certificates"


def _events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    items = json.loads(kubectl.run("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [e["message"] for e in items if e["reason"] == reason]


def test_scale_down_one_pod_at_a_time(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("theta", ns, replicas=3))
    wait_for("3 pods", lambda: len(kubectl.items("pods", ns, SELECTOR.format(name="theta"))) == 3)
    kubectl.run("scale", "vc/theta", "-n", ns, "--replicas=1")
    _wait_sts(kubectl, ns, "theta", lambda s: s["spec"]["replicas"] == 1)
    wait_for("one pod left", lambda: [p["metadata"]["name"] for p in
                                      kubectl.items("pods", ns, SELECTOR.format(name="theta"))] == ["theta-0"])
    steps = _events(kubectl, ns, "Scaling")
    assert "scaling from 3 to 2 pods" in steps and "scaling from 2 to 1 pods" in steps, steps
    assert "scaling from 3 to 1 pods" not in steps


def test_certificate_rotated_before_expiry(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("iota", ns))
    sts = _wait_sts(kubectl, ns, "iota")
    old_hash = sts["spec"]["template"]["metadata"]["annotations"]["vdb.io/tls-hash"]
    ca_secret = wait_for("CA", lambda: kubectl.get("secret", "iota-ca-key", ns))
    ca = tlsutil.IssuedCert(base64.b64decode(ca_secret["data"]["tls.crt"]),
                            base64.b64decode(ca_secret["data"]["tls.key"]))
    # A certificate from the same CA that is 70 days into its 90: renewal is due.
    aged = tlsutil.issue_server(ca, server_dns_names("iota", ns),
                                now=dt.datetime.now(dt.UTC) - dt.timedelta(days=70))
    kubectl.run("patch", "secret", "iota-tls", "-n", ns, "--type=merge", "-p", json.dumps({"data": {
        "tls.crt": base64.b64encode(aged.cert_pem).decode(), "tls.key": base64.b64encode(aged.key_pem).decode()}}))
    wait_for("rotation", lambda: _events(kubectl, ns, "CertificateRotated"), timeout=30)
    secret = kubectl.get("secret", "iota-tls", ns)
    assert secret is not None
    cert = base64.b64decode(secret["data"]["tls.crt"])
    assert tlsutil.not_after(cert) > dt.datetime.now(dt.UTC) + dt.timedelta(days=80)
    assert tlsutil.needs_renewal(cert, ca.cert_pem, server_dns_names("iota", ns), now=dt.datetime.now(dt.UTC)) is None
    sts = _wait_sts(kubectl, ns, "iota", lambda s: s["spec"]["template"]["metadata"]["annotations"]
                    ["vdb.io/tls-hash"] != old_hash)
    vc = kubectl.get("vc", "iota", ns)
    assert vc is not None and vc["status"]["certificate"]["notAfter"].startswith(
        tlsutil.not_after(cert).strftime("%Y-%m-%dT%H:%M"))


def test_volume_growth_failure_is_reported_not_fatal(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    """A bound claim whose StorageClass cannot expand: Degraded with the API's reason, and
    the rest of the spec (here: the image) still applies."""
    kubectl.apply(cluster("kappa", ns))
    _wait_sts(kubectl, ns, "kappa")
    wait_for("claims", lambda: len(kubectl.items("pvc", ns, SELECTOR.format(name="kappa"))) == 2)
    for claim in kubectl.items("pvc", ns, SELECTOR.format(name="kappa")):
        pv_name = f"{ns}-{claim['metadata']['name']}"
        kubectl.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                       "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                "hostPath": {"path": f"/tmp/{pv_name}"},
                                "claimRef": {"namespace": ns, "name": claim["metadata"]["name"]}}})
    wait_for("bound claims", lambda: all(c.get("status", {}).get("phase") == "Bound"
                                         for c in kubectl.items("pvc", ns, SELECTOR.format(name="kappa"))), timeout=60)
    try:
        kubectl.apply(cluster("kappa", ns, storage={"aof": {"size": "3Gi"}}, image="velocity/engine:v2"))
        vc = wait_for("Degraded", lambda: (o := kubectl.get("vc", "kappa", ns))
                      and (condition(o, "Degraded") or {}).get("reason") == "VolumeExpansionFailed" and o)
        assert "aof-kappa-0" in (condition(vc, "Degraded") or {})["message"]
        _wait_sts(kubectl, ns, "kappa", lambda s: s["spec"]["template"]["spec"]["containers"][0]["image"]
                  == "velocity/engine:v2")
    finally:
        for claim in kubectl.items("pvc", ns, SELECTOR.format(name="kappa")):
            kubectl.run("delete", "pv", f"{ns}-{claim['metadata']['name']}", "--wait=false", check=False)


FAKE_CERT_MANAGER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {"group": "cert-manager.io", "scope": "Namespaced",
             "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_cert_manager_mode(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    """Without cert-manager: Degraded with a reason. With its API (a stand-in CRD, and the
    test playing cert-manager): a Certificate for NAME-tls, and its CA mirrored to NAME-ca."""
    spec = {"tls": {"certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}}}
    kubectl.apply(cluster("lam", ns, **spec))
    vc = wait_for("Degraded", lambda: (o := kubectl.get("vc", "lam", ns))
                  and (condition(o, "Degraded") or {}).get("reason") == "CertManagerNotInstalled" and o)
    assert "install cert-manager" in (condition(vc, "Degraded") or {})["message"]
    assert kubectl.get("secret", "lam-ca-key", ns) is None, "no operator CA in cert-manager mode"

    kubectl.apply(FAKE_CERT_MANAGER_CRD)
    kubectl.run("wait", "--for=condition=Established", "crd/certificates.cert-manager.io", "--timeout=30s")
    cert = wait_for("Certificate", lambda: kubectl.get("certificates.cert-manager.io", "lam-tls", ns), timeout=30)
    assert cert["spec"]["secretName"] == "lam-tls"
    assert cert["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    now = dt.datetime.now(dt.UTC)
    ca = tlsutil.issue_ca("corp", now=now)
    issued = tlsutil.issue_server(ca, server_dns_names("lam", ns), now=now)
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": "lam-tls", "namespace": ns},
                   "data": {k: base64.b64encode(v).decode() for k, v in
                            {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": ca.cert_pem}.items()}})
    mirrored = wait_for("NAME-ca", lambda: kubectl.get("secret", "lam-ca", ns), timeout=30)
    assert base64.b64decode(mirrored["data"]["ca.crt"]) == ca.cert_pem
    wait_for("not Degraded", lambda: (condition(kubectl.get("vc", "lam", ns), "Degraded") or {}).get("status")
             == "False", timeout=30)
    sts = _wait_sts(kubectl, ns, "lam")
    assert "vdb.io/tls-hash" in sts["spec"]["template"]["metadata"]["annotations"]
