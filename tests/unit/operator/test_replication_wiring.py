"""Replication wiring: engine flags, Lease RBAC, the Lease holder -> pod mapping, spec bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from velocity_operator import names
from velocity_operator.api.crd import custom_resource_definitions
from velocity_operator.builders import engine_rbac
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner
from velocity_operator.builders.secrets import server_dns_names
from velocity_operator.controllers.primary import primary_of_lease

from .conftest import make_spec


def _flags(args: list[str]) -> dict[str, str]:
    return {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--") and i + 1 < len(args)}


def _pod_spec(owner: Owner, **spec: Any) -> dict[str, Any]:
    obj = sts.statefulset(owner, make_spec(**spec), config_hash="c")
    pod_spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod_spec


def test_every_pod_advertises_its_own_dns_name_and_joins_the_lease(owner: Owner) -> None:
    pod_spec = _pod_spec(owner, replicas=3)
    container = pod_spec["containers"][0]
    flags = _flags(container["args"])
    assert flags["--advertise"] == "vdb://$(VELOCITY_POD_NAME).alpha-headless.prod.svc:2005"
    # The kubelet expands $(VELOCITY_POD_NAME) only from a variable the container declares.
    env = {e["name"]: e for e in container["env"]}
    assert env["VELOCITY_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert flags["--lease-name"] == "alpha-primary" and flags["--lease-namespace"] == "prod"
    assert flags["--replica-ca"] == "/etc/velocity/tls/ca.crt"
    assert flags["--replication-mode"] == "async" and "--sync-replicas" not in flags
    assert pod_spec["serviceAccountName"] == "alpha-engine"
    assert pod_spec["automountServiceAccountToken"] is True


def test_sync_mode_flags(owner: Owner) -> None:
    pod_spec = _pod_spec(owner, replicas=3, replication={"mode": "sync", "syncReplicas": 2})
    flags = _flags(pod_spec["containers"][0]["args"])
    assert flags["--replication-mode"] == "sync" and flags["--sync-replicas"] == "2"


def test_without_tls_no_replica_ca(owner: Owner) -> None:
    flags = _flags(_pod_spec(owner, tls={"enabled": False})["containers"][0]["args"])
    assert "--replica-ca" not in flags and "--lease-name" in flags


def test_server_certificate_covers_the_advertised_names(owner: Owner) -> None:
    """Replicas verify the primary's advertised host name against its certificate."""
    pod_host = names.pod_dns_name("alpha", "prod", "alpha-2")
    wildcard = "*." + pod_host.split(".", 1)[1]
    assert wildcard in server_dns_names("alpha", "prod")


def test_engine_role_grants_its_own_leases_only(owner: Owner) -> None:
    role = engine_rbac.role(owner)
    members = [f"alpha-primary-member-{i}" for i in range(16)]
    assert role["rules"] == [
        # get/update by name: the primary Lease and the member Leases of ordinals 0..15.
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["alpha-primary", *members], "verbs": ["get", "update"]},
        # list by label selector cannot be limited by name; no create, watch or delete.
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]},
    ]
    binding = engine_rbac.role_binding(owner)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "alpha-engine", "namespace": "prod"}]
    sa = engine_rbac.service_account(owner)
    assert sa["metadata"]["name"] == "alpha-engine" and sa["automountServiceAccountToken"] is False
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == owner.uid for o in (role, binding, sa))


@pytest.mark.parametrize(("holder", "pod"), [
    ("vdb://alpha-2.alpha-headless.prod.svc:2005", "alpha-2"),
    ("vdb://alpha-0.alpha-headless.prod.svc.cluster.local:2005", "alpha-0"),
    ("vdb://alpha-1.alpha-headless.other.svc:2005", None),   # another namespace
    ("vdb://beta-1.beta-headless.prod.svc:2005", None),      # another cluster
    ("vdb://alpha-x.alpha-headless.prod.svc:2005", None),    # not an ordinal
    ("vdb://127.0.0.1:2005", None),
    ("", None),
])
def test_primary_of_lease(holder: str, pod: str | None) -> None:
    lease = {"spec": {"holderIdentity": holder}}
    assert primary_of_lease("alpha", "prod", lease) == pod


def test_no_lease_no_primary() -> None:
    assert primary_of_lease("alpha", "prod", None) is None
    assert primary_of_lease("alpha", "prod", {"spec": {}}) is None


def test_replication_defaults_and_bounds() -> None:
    spec = make_spec()
    assert spec.replication.mode == "async" and spec.replication.sync_replicas == 1
    with pytest.raises(ValidationError):
        make_spec(replication={"mode": "quorum"})
    with pytest.raises(ValidationError):
        make_spec(replication={"syncReplicas": 0})


def test_crd_refuses_sync_replicas_not_below_replicas() -> None:
    """The rule is CEL (checked by the API server; tests/operator exercises it for real)."""
    crd = next(c for c in custom_resource_definitions() if c["spec"]["names"]["kind"] == "VelocityCluster")
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec_schema["x-kubernetes-validations"]]
    assert any("syncReplicas" in r for r in rules)
    replication = spec_schema["properties"]["replication"]["properties"]
    assert replication["mode"]["enum"] == ["async", "sync"]
    assert replication["syncReplicas"]["minimum"] == 1


def test_member_leases_are_named_after_the_ordinal_node_ids() -> None:
    """The engine names its member Lease LEASE-member-NODE_ID; the init container makes
    NODE_ID the pod ordinal, so the Role's names match what the engine asks for."""
    assert names.member_lease("alpha", names.node_id(3)) == "alpha-primary-member-3"
    assert names.member_lease("alpha", "3").rsplit("-member-", 1)[-1] == "3"  # how the engine parses it


def test_legacy_member_leases_are_kept_in_the_role(owner: Owner) -> None:
    """Pods created before the node-id init container have random node ids: their member
    Leases (found by label) stay allowed until they restart; foreign names never enter."""
    role = engine_rbac.role(owner, ["alpha-primary-member-3f9a2b", "alpha-primary-member-0", "beta-primary-member-x"])
    allowed = role["rules"][0]["resourceNames"]
    assert "alpha-primary-member-3f9a2b" in allowed
    assert "beta-primary-member-x" not in allowed
    assert allowed.count("alpha-primary-member-0") == 1


def test_leases_the_operator_creates(owner: Owner) -> None:
    leases = engine_rbac.leases(owner, 3)
    assert [lease["metadata"]["name"] for lease in leases] == [
        "alpha-primary", "alpha-primary-member-0", "alpha-primary-member-1", "alpha-primary-member-2"]
    primary, member = leases[0], leases[1]
    assert primary["spec"] == {} and "vdb.io/lease" not in primary["metadata"]["labels"]
    # Labelled like the engine labels its own, with no holder and no renewTime: not a live member.
    assert member["metadata"]["labels"]["vdb.io/lease"] == "alpha-primary" and member["spec"] == {}
    assert all(lease["metadata"]["ownerReferences"][0]["uid"] == owner.uid for lease in leases)
