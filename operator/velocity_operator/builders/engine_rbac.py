"""The engine pods' identity: ServiceAccount NAME-engine, Role and RoleBinding NAME-engine,
and the Leases that Role lets them use.

The Lease agent inside each engine elects the primary through coordination.k8s.io/v1
Leases in the cluster's namespace (docs/formats/replication.md, section 8): the primary
Lease NAME-primary and one member Lease per node, NAME-primary-member-NODE_ID. It reads
(get) and updates them by compare-and-swap and lists the member Leases by label. The
Role grants exactly that, by name (issue 11):

- get, update on NAME-primary and NAME-primary-member-0 .. -15 (node ids are pod
  ordinals, written by the pods' node-id init container, see builders/statefulset.py),
  plus the member Leases of nodes that still run with a random id from before (found by
  their label, so a rolling update never locks a running pod out);
- list on leases in the namespace: the agent finds the live members with a label
  selector, and Kubernetes cannot restrict a labelled list by name;
- no create: `create` cannot be restricted by resourceNames (the name is not known when
  the request is authorised), so the operator creates the Leases itself, empty, before the
  pods exist (`leases`), and the engines only ever update them; no watch, no delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import names
from ..api.cluster import MAX_REPLICAS
from .meta import Owner, object_meta

__all__ = [
    "LEASE_API",
    "LEASE_LABEL",
    "LEASE_VERBS",
    "LIST_VERBS",
    "lease",
    "lease_names",
    "leases",
    "role",
    "role_binding",
    "service_account",
]

LEASE_API = "coordination.k8s.io/v1"
# The label the engine's Lease agent puts on member Leases (value: the primary Lease's name).
LEASE_LABEL = "vdb.io/lease"
LEASE_VERBS = ["get", "update"]  # on the cluster's own Leases, by name
LIST_VERBS = ["list"]  # namespace-wide: a list by label selector cannot be limited by name


def service_account(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(owner, names.engine_service_account(owner.name)),
        # Only the engine pods mount its token (their pod spec asks for it explicitly).
        "automountServiceAccountToken": False,
    }


def lease_names(cluster: str, legacy_members: Iterable[str] = ()) -> list[str]:
    """Every Lease the engines of `cluster` may read and update: the primary Lease, the
    member Leases of ordinals 0..MAX_REPLICAS-1, and `legacy_members` (member Leases of
    nodes whose id predates the node-id init container)."""
    wanted = [names.lease(cluster)] + [names.member_lease(cluster, names.node_id(i)) for i in range(MAX_REPLICAS)]
    prefix = names.member_lease(cluster, "")
    extra = sorted({m for m in legacy_members if m.startswith(prefix) and m not in wanted})
    return wanted + extra


def role(owner: Owner, legacy_members: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(owner, names.engine_role(owner.name)),
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": lease_names(owner.name, legacy_members), "verbs": list(LEASE_VERBS)},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(LIST_VERBS)},
        ],
    }


def role_binding(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(owner, names.engine_role(owner.name)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.engine_role(owner.name)},
        "subjects": [{"kind": "ServiceAccount", "name": names.engine_service_account(owner.name),
                      "namespace": owner.namespace}],
    }


def lease(owner: Owner, name: str, *, member: bool) -> dict[str, Any]:
    """An empty Lease (no holder) for the engines to take: the primary Lease, or a member
    Lease (labelled like the engine labels its own, never renewed: not a live member)."""
    meta = object_meta(owner, name)
    if member:
        meta["labels"][LEASE_LABEL] = names.lease(owner.name)
    return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta, "spec": {}}


def leases(owner: Owner, replicas: int) -> list[dict[str, Any]]:
    """The Leases to exist before pods 0..replicas-1 start: NAME-primary and their members."""
    return [lease(owner, names.lease(owner.name), member=False)] + [
        lease(owner, names.member_lease(owner.name, names.node_id(i)), member=True) for i in range(replicas)
    ]
