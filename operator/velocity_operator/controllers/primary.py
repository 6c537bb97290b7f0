"""Which pod is the primary, from the Lease the engines elect it with, and the pod labels
that route the client Service to it.

The engines own the Lease CLUSTER-primary (docs/formats/replication.md, section 8): its
holderIdentity is the primary's advertised endpoint vdb://POD.CLUSTER-headless.NS.svc:2005.
The operator only reads it: it creates it empty (no holder) before the pods exist, because
the engines' Role may not create Leases (builders/engine_rbac.py), and never writes it
again, so it can never elect anyone.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..builders.meta import Owner
from ..kube import Kube
from .actions import Action

__all__ = ["LEASE_API", "label_roles", "primary_of_lease", "read_primary"]

LEASE_API = "coordination.k8s.io/v1"


def primary_of_lease(cluster: str, namespace: str, lease: dict[str, Any] | None) -> str | None:
    """The pod holding `lease`, or None (no Lease yet, no holder, or a holder that is not
    one of the cluster's pods)."""
    if lease is None:
        return None
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return names.pod_of_endpoint(cluster, namespace, holder) if holder else None


async def read_primary(kube: Kube, owner: Owner) -> str | None:
    lease = await kube.get(LEASE_API, "Lease", owner.namespace, names.lease(owner.name))
    return primary_of_lease(owner.name, owner.namespace, lease)


async def label_roles(kube: Kube, owner: Owner, primary: str | None, actions: list[Action]) -> None:
    """Label the holder `vdb.io/role=primary` and every other pod `replica`. Without a
    holder the labels stay as they are: the last primary may still answer (REDIRECT at
    worst) and an election is at most a lease duration away."""
    if primary is None:
        return
    pods = await kube.list("v1", "Pod", owner.namespace, label_selector=names.selector_string(owner.name))
    # Demote first, then promote: the Service never selects two pods at once.
    ordered = sorted(pods, key=lambda p: p["metadata"]["name"] == primary)
    for pod in ordered:
        name = pod["metadata"]["name"]
        role = "primary" if name == primary else "replica"
        if (pod["metadata"].get("labels") or {}).get(names.ROLE_LABEL) == role:
            continue
        await kube.merge_patch("v1", "Pod", owner.namespace, name,
                               {"metadata": {"labels": {names.ROLE_LABEL: role}}})
        if role == "primary":
            actions.append(Action("PrimaryChanged", f"{name} holds Lease {names.lease(owner.name)}: "
                                                    f"the client Service now routes to it"))
