"""Object metadata shared by every builder: names, labels and the owner reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.crd import CLUSTER

__all__ = ["Owner", "object_meta"]


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns the objects being built (garbage collection, events)."""

    name: str
    namespace: str
    uid: str
    api_version: str = CLUSTER.api_version
    kind: str = CLUSTER.kind

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def object_meta(owner: Owner, name: str, *, cluster: str | None = None,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """metadata with the cluster's labels and a controller reference to `owner`."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": names.labels(cluster or owner.name),
        "ownerReferences": [owner.reference()],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta
