"""The StatefulSet: volumes, probes, security context, resources, rolling behaviour."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner

from .conftest import make_spec


def _build(owner: Owner, **spec: Any) -> dict[str, Any]:
    return sts.statefulset(owner, make_spec(**spec), config_hash="c0ffee", tls_hash="7157")


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def test_two_claim_templates_with_the_spec_sizes(owner: Owner) -> None:
    obj = _build(owner, storage={"aof": {"size": "3Gi"}, "snapshots": {"size": "5Gi"},
                                 "storageClassName": "fast"})
    templates = {t["metadata"]["name"]: t["spec"] for t in obj["spec"]["volumeClaimTemplates"]}
    assert templates["aof"]["resources"]["requests"]["storage"] == "3Gi"
    assert templates["snapshots"]["resources"]["requests"]["storage"] == "5Gi"
    assert templates["aof"]["storageClassName"] == "fast"
    mounts = {m["name"]: m["mountPath"] for m in _container(obj)["volumeMounts"]}
    assert mounts["aof"] == "/data" and mounts["snapshots"] == "/data/snapshots"


def test_existing_claim_sizes_are_kept(owner: Owner) -> None:
    """Claim templates are immutable: a grown spec must not change them."""
    old = _build(owner, storage={"aof": {"size": "1Gi"}})
    new = sts.statefulset(owner, make_spec(storage={"aof": {"size": "4Gi"}}), config_hash="x",
                          fixed_claim_sizes=sts.claim_sizes(old))
    assert new["spec"]["volumeClaimTemplates"] == old["spec"]["volumeClaimTemplates"]


def test_probes_hit_the_engine_health_endpoints(owner: Owner) -> None:
    c = _container(_build(owner))
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"vproto": 2005, "metrics": 9105}


def test_restricted_security_context(owner: Owner) -> None:
    obj = _build(owner)
    pod = obj["spec"]["template"]["spec"]
    c = _container(obj)["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert any(m["mountPath"] == "/tmp" for m in _container(obj)["volumeMounts"])


def test_resources_default_and_override(owner: Owner) -> None:
    assert _container(_build(owner))["resources"] == sts.DEFAULT_RESOURCES
    res = _container(_build(owner, resources={"limits": {"cpu": 2, "memory": "2Gi"}}))["resources"]
    assert res["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert res["requests"] == sts.DEFAULT_RESOURCES["requests"]


def test_image_replicas_and_rolling_order(owner: Owner) -> None:
    obj = _build(owner, replicas=3, image="velocity/engine:1.2")
    assert obj["spec"]["replicas"] == 3
    assert _container(obj)["image"] == "velocity/engine:1.2"
    assert obj["spec"]["updateStrategy"]["type"] == "OnDelete"  # the operator orders the restarts
    assert obj["spec"]["serviceName"] == "alpha-headless"
    assert _container(_build(owner))["image"] == sts.DEFAULT_IMAGE


def test_hashes_on_the_pod_template_roll_the_pods(owner: Owner) -> None:
    ann = _build(owner)["spec"]["template"]["metadata"]["annotations"]
    assert ann[sts.CONFIG_HASH_ANNOTATION] == "c0ffee"
    assert ann[sts.TLS_HASH_ANNOTATION] == "7157"
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9105"


def test_tls_secrets_are_mounted_only_with_tls(owner: Owner) -> None:
    secrets = {v["secret"]["secretName"] for v in _build(owner)["spec"]["template"]["spec"]["volumes"]
               if "secret" in v}
    # One Secret per credential (issue 11): client, admin and replication tokens.
    assert secrets == {"alpha-tls", "alpha-auth", "alpha-admin", "alpha-replication"}
    mounts = {m["name"]: m for m in _container(_build(owner))["volumeMounts"]}
    assert mounts["auth"]["mountPath"] == "/etc/velocity/auth"
    assert mounts["admin"]["mountPath"] == "/etc/velocity/admin"
    assert mounts["replication"]["mountPath"] == "/etc/velocity/replication"
    assert all(mounts[n]["readOnly"] for n in ("auth", "admin", "replication"))
    plain = _build(owner, tls={"enabled": False})["spec"]["template"]["spec"]["volumes"]
    assert not any("secret" in v for v in plain)
    byo = _build(owner, tls={"secretName": "my-cert"})["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "my-cert", "defaultMode": 0o440}} in byo


def test_anti_affinity_modes(owner: Owner) -> None:
    preferred = _build(owner)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in preferred
    required = _build(owner, podAntiAffinity="Required")["spec"]["template"]["spec"]["affinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in required["podAntiAffinity"]
    assert "affinity" not in _build(owner, podAntiAffinity="None")["spec"]["template"]["spec"]


def test_selector_is_a_subset_of_the_pod_labels(owner: Owner) -> None:
    obj = _build(owner)
    selector = obj["spec"]["selector"]["matchLabels"]
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_claim_retention_policy(owner: Owner) -> None:
    obj = _build(owner, storage={"claimRetention": {"whenDeleted": "Delete"}})
    assert obj["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenScaled": "Retain", "whenDeleted": "Delete"}


def test_restore_source_wraps_the_engine_and_round_trips(owner: Owner) -> None:
    source = sts.RestoreSource(claim_name="alpha-backups", path="velocity/alpha/b1.vsnap")
    obj = sts.statefulset(owner, make_spec(), config_hash="x", restore=source)
    c = _container(obj)
    assert c["command"][0] == "/bin/sh" and "--restore-from" in c["command"][2]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VELOCITY_RESTORE_FILE"] == "/restore/velocity/alpha/b1.vsnap"
    assert sts.restore_of(obj) == source
    assert sts.restore_of(_build(owner)) is None
    assert _container(_build(owner))["command"] == ["velocity-engine"]


def _run_init(container: dict[str, Any], data: Path, pod: str) -> None:
    script = container["command"][2].replace("/data", str(data))
    done = subprocess.run(["/bin/sh", "-c", script], env={"PATH": os.environ["PATH"], "VELOCITY_POD_NAME": pod},
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr


def test_node_id_init_container_writes_the_ordinal(owner: Owner, tmp_path: Path) -> None:
    """The engine names its member Lease after DATA_DIR/node-id: the init container makes
    it the pod ordinal (the Role lists those names), replacing a random id of old."""
    pod = _build(owner)["spec"]["template"]["spec"]
    [init] = [c for c in pod["initContainers"] if c["name"] == sts.NODE_ID_CONTAINER]
    assert init["image"] == _container(_build(owner))["image"]
    assert init["volumeMounts"] == [{"name": "aof", "mountPath": "/data"}]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    _run_init(init, tmp_path, "my-cluster-12")
    node_id = tmp_path / "node-id"
    assert node_id.read_text() == "12\n" and (node_id.stat().st_mode & 0o777) == 0o600
    node_id.write_text("3f9a2b7c0d1e2f30\n")  # a pod created by an older operator
    _run_init(init, tmp_path, "my-cluster-12")
    assert node_id.read_text() == "12\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-id"]


def test_restore_treats_node_id_and_tokens_as_no_data(owner: Owner, tmp_path: Path) -> None:
    """A pod restarted before it wrote data still restores: node-id and the generated
    token files are not data; anything else is."""
    obj = sts.statefulset(owner, make_spec(), config_hash="x", restore=sts.RestoreSource("c", "p.vsnap"))
    script = _container(obj)["command"][2].replace("/data", str(tmp_path))
    probe = script.replace('exec velocity-engine "$@" --restore-from "$VELOCITY_RESTORE_FILE"', "echo restore; exit")
    probe = probe.replace('exec velocity-engine "$@"', "echo keep")

    def run() -> str:
        return subprocess.run(["/bin/sh", "-c", probe], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    for name in ("node-id", "auth-token", "admin-token", "replication-token", "lost+found"):
        (tmp_path / name).write_text("x")
    assert run() == "restore"
    (tmp_path / "storage").mkdir()
    assert run() == "keep"
