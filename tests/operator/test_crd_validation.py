"""The generated CRDs on a real API server: accepted as structural, defaults applied,
invalid objects rejected with messages that say what to fix."""

from __future__ import annotations

import json

import pytest

from .conftest import Kubectl, cluster


def test_crds_are_established_and_explained(kubectl: Kubectl, crds: None) -> None:
    explained = kubectl.run("explain", "velocitycluster.spec.storage.storageClassName").stdout
    assert "Immutable after creation" in explained
    assert "Number of pods" in kubectl.run("explain", "vc.spec.replicas").stdout
    crd = kubectl.get("crd", "velocityclusters.vdb.io")
    assert crd is not None
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established["Established"] == "True"
    assert established.get("NonStructuralSchema", "False") == "False"


def test_defaults_are_applied(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("defaults", ns))
    obj = kubectl.get("vc", "defaults", ns)
    assert obj is not None
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["tls"]["enabled"] is True
    assert spec["storage"]["aof"]["size"] == "1Gi"
    assert spec["storage"]["claimRetention"] == {"whenScaled": "Retain", "whenDeleted": "Retain"}


@pytest.mark.parametrize("spec, message", [
    ({"replicas": 0}, "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
    ({"replicas": 17}, "should be less than or equal to 16"),
    ({"storage": {"aof": {"size": "lots"}}}, "spec.storage.aof.size"),
    ({"storage": {"storageClassName": "Bad_Class"}}, "spec.storage.storageClassName"),
    ({"backup": {"schedule": "every hour"}}, "backup.schedule must be a cron expression"),
    ({"backup": {"schedule": "@hourly", "retention": 0}}, "spec.backup.retention"),
    ({"tls": {"enabled": False, "secretName": "mine"}}, "tls.secretName and tls.certManager need tls.enabled"),
    ({"podAntiAffinity": "Sometimes"}, 'supported values: "Preferred", "Required", "None"'),
    ({"backup": {"schedule": "@daily", "destination": {}}},
     "set exactly one of destination.persistentVolumeClaim or destination.s3"),
    ({"networkPolicy": {"enabled": True, "clients": [{}]}}, "a peer needs namespaceSelector, podSelector or ipBlock"),
    ({"networkPolicy": {"clients": [{"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}]}},
     "ipBlock cannot be combined with namespaceSelector or podSelector"),
    ({"networkPolicy": {"prometheus": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]}},
     'supported values: "In", "NotIn", "Exists", "DoesNotExist"'),
])
def test_invalid_clusters_are_rejected(kubectl: Kubectl, crds: None, ns: str, spec: dict[str, object],
                                       message: str) -> None:
    done = kubectl.apply(cluster("bad", ns, **spec), check=False)
    assert done.returncode != 0, "the API server accepted an invalid VelocityCluster"
    assert message in done.stderr, done.stderr


def test_storage_class_is_immutable(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("sc", ns, storage={"storageClassName": "fast"}))
    done = kubectl.apply(cluster("sc", ns, storage={"storageClassName": "slow"}), check=False)
    assert done.returncode != 0
    assert "storage.storageClassName is immutable" in done.stderr
    done = kubectl.run("patch", "vc", "sc", "-n", ns, "--type=json",
                       "-p", json.dumps([{"op": "remove", "path": "/spec/storage/storageClassName"}]), check=False)
    assert done.returncode != 0 and "immutable" in done.stderr


def test_data_plane_changes_only_from_python_to_native(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("plane", ns, config={"dataPlane": "python"}))
    kubectl.apply(cluster("plane", ns, config={"dataPlane": "native"}))
    done = kubectl.apply(cluster("plane", ns, config={"dataPlane": "python"}), check=False)
    assert done.returncode != 0, "the API server accepted dataPlane native -> python"
    assert "config.dataPlane can only change from python to native" in done.stderr, done.stderr


def test_bootstrap_only_at_creation(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("boot", ns))
    done = kubectl.apply(cluster("boot", ns, bootstrap={"fromBackup": {"name": "b1"}}), check=False)
    assert done.returncode != 0
    assert "spec.bootstrap can only be set when the cluster is created" in done.stderr


def test_backup_validation(kubectl: Kubectl, crds: None, ns: str) -> None:
    def backup(name: str, **spec: object) -> dict[str, object]:
        return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}

    done = kubectl.apply(backup("nocluster"), check=False)
    assert done.returncode != 0 and "spec.cluster: Required value" in done.stderr
    done = kubectl.apply(backup("both", cluster="a", destination={
        "persistentVolumeClaim": {"claimName": "x"},
        "s3": {"endpoint": "http://m:9000", "bucket": "bkt", "credentialsSecret": {"name": "s"}}}), check=False)
    assert done.returncode != 0 and "set exactly one of" in done.stderr
    done = kubectl.apply(backup("up", cluster="a", destination={
        "persistentVolumeClaim": {"claimName": "x", "path": "../etc"}}), check=False)
    assert done.returncode != 0 and "must not contain '..'" in done.stderr
    kubectl.apply(backup("ok", cluster="a"))
    done = kubectl.apply(backup("ok", cluster="b"), check=False)
    assert done.returncode != 0 and "immutable" in done.stderr


def test_scale_subresource(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("scaled", ns))
    kubectl.run("scale", "vc/scaled", "-n", ns, "--replicas=3")
    obj = kubectl.get("vc", "scaled", ns)
    assert obj is not None and obj["spec"]["replicas"] == 3


def test_network_policy_is_off_by_default_and_explained(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(cluster("np", ns, networkPolicy={"clients": [
        {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "podSelector": {}}]}))
    obj = kubectl.get("vc", "np", ns)
    assert obj is not None and obj["spec"]["networkPolicy"]["enabled"] is False
    assert obj["spec"]["networkPolicy"]["clients"][0]["podSelector"] == {}
    explained = kubectl.run("explain", "vc.spec.networkPolicy.clients").stdout
    assert "Who may connect to the client port 2005" in explained
    assert "ipBlock" in kubectl.run("explain", "vc.spec.networkPolicy.operator").stdout
