"""Generate the CustomResourceDefinitions from the pydantic models.

pydantic produces JSON Schema 2020-12 with `$ref`s; a CRD wants a *structural*
OpenAPI v3 schema: everything inlined, no `null` types, no titles. `openapi_schema`
converts one into the other; `custom_resource_definitions` assembles the CRDs with
their subresources and printer columns. tools/generate_crds.py writes the result.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from .backup import VelocityBackupSpec, VelocityBackupStatus
from .cluster import VelocityClusterSpec, VelocityClusterStatus
from .common import ApiModel

__all__ = [
    "BACKUP",
    "CLUSTER",
    "GROUP",
    "VERSION",
    "CrdNames",
    "custom_resource_definitions",
    "openapi_schema",
]

GROUP = "vdb.io"
VERSION = "v1alpha1"

_DROP = {"title"}


class CrdNames(ApiModel):
    """The names of one CRD kind."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"


CLUSTER = CrdNames(
    kind="VelocityCluster", plural="velocityclusters", singular="velocitycluster",
    short_names=["vc"],
)
BACKUP = CrdNames(
    kind="VelocityBackup", plural="velocitybackups", singular="velocitybackup",
    short_names=["vbackup"],
)


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `model`, every `$ref` inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        base = _convert(target, defs)
        # Sibling keys of the reference (the field's description, default, CEL rules)
        # describe the field and win over the referenced type's own.
        rules = base.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
        base.update(_convert(node, defs))
        if rules:
            base["x-kubernetes-validations"] = rules
        return base
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {options}")
        if node.get("default", ...) is None:
            del node["default"]
        inner = _convert(options[0], defs)
        inner.update(_convert(node, defs))
        return inner
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        elif key == "anyOf":
            out[key] = [_convert(sub, defs) for sub in value]
        elif key == "default" and value is None:
            continue
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out:
        out.setdefault("type", "object")
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def _root_schema(kind: str, spec: type[BaseModel], status: type[BaseModel],
                 description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "The versioned schema of this object; vdb.io/v1alpha1.",
            },
            "kind": {"type": "string", "description": f"The type of this object; {kind}."},
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec),
            "status": openapi_schema(status),
        },
    }


def _crd(names: CrdNames, schema: dict[str, Any], *, subresources: dict[str, Any],
         columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.crd_name,
            "labels": {"app.kubernetes.io/part-of": "velocity"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": names.kind,
                "listKind": f"{names.kind}List",
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": names.short_names,
                "categories": ["velocity"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _column(name: str, type_: str, path: str, description: str,
            priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {
        "name": name, "type": type_, "jsonPath": path, "description": description
    }
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


def custom_resource_definitions() -> list[dict[str, Any]]:
    """The two CRDs of the vdb.io group, ready to serialise."""
    cluster = _crd(
        CLUSTER,
        _root_schema(
            CLUSTER.kind, VelocityClusterSpec, VelocityClusterStatus,
            "A Velocity key-value store deployment: pods with persistent volumes for the "
            "append-only log and snapshots, TLS, an auth token, Services, metrics and "
            "scheduled backups, managed by the Velocity operator.",
        ),
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=[
            _column("Replicas", "integer", ".spec.replicas", "Desired number of pods."),
            _column("Ready", "integer", ".status.readyReplicas", "Pods that are ready."),
            _column("Primary", "string", ".status.currentPrimary", "The pod accepting writes."),
            _column("Phase", "string", ".status.phase", "Summary of the cluster's state."),
            _AGE,
            _column("Image", "string", ".status.image", "Engine image.", priority=1),
        ],
    )
    backup = _crd(
        BACKUP,
        _root_schema(
            BACKUP.kind, VelocityBackupSpec, VelocityBackupStatus,
            "An on-demand backup: a consistent snapshot of a VelocityCluster's data stored "
            "on a PersistentVolumeClaim or in S3-compatible storage. Scheduled backups from "
            "VelocityCluster.spec.backup are VelocityBackups too.",
        ),
        subresources={"status": {}},
        columns=[
            _column("Cluster", "string", ".spec.cluster", "The cluster backed up."),
            _column("Phase", "string", ".status.phase", "Pending, Running, Completed or Failed."),
            _column("Size", "integer", ".status.sizeBytes", "Snapshot size in bytes."),
            _AGE,
            _column("Location", "string", ".status.location", "Where the file is.", priority=1),
            _column("Reason", "string", ".status.reason", "Why it is in this phase.",
                    priority=1),
        ],
    )
    return [cluster, backup]
