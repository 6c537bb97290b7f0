"""The engine pods' identity: ServiceAccount NAME-engine, Role and RoleBinding NAME-engine.

The Lease agent inside each engine elects the primary through coordination.k8s.io/v1
Leases in the cluster's namespace (docs/formats/replication.md, section 8): it reads,
lists and watches them, creates the member and primary Leases and updates them by
compare-and-swap. Nothing else: no delete, no other resource, no other namespace.
The rule is namespace-wide because the member Leases (NAME-primary-member-NODE_ID) are
named after node ids the operator does not know in advance.
"""

from __future__ import annotations

from typing import Any

from .. import names
from .meta import Owner, object_meta

__all__ = ["LEASE_VERBS", "role", "role_binding", "service_account"]

LEASE_VERBS = ["get", "list", "watch", "create", "update"]


def service_account(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(owner, names.engine_service_account(owner.name)),
        # Only the engine pods mount its token (their pod spec asks for it explicitly).
        "automountServiceAccountToken": False,
    }


def role(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(owner, names.engine_role(owner.name)),
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(LEASE_VERBS)}],
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
