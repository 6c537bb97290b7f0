"""The generated CRDs: in sync with the models, structural, documented, validated by CEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from velocity_operator.api import crdgen
from velocity_operator.api.crd import BACKUP, CLUSTER, custom_resource_definitions

REPO = Path(__file__).resolve().parents[3]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd for crd in custom_resource_definitions()}


def test_committed_yaml_matches_the_models() -> None:
    stale = crdgen.check(REPO)
    assert not stale, f"run `make crds`: {stale} differ from what the models generate"


def test_check_reports_drift(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    assert crdgen.check(tmp_path) == []
    target = tmp_path / "crds" / "vdb.io_velocityclusters.yaml"
    target.write_text(target.read_text().replace("minimum: 1", "minimum: 0", 1))
    assert crdgen.check(tmp_path) == ["crds/vdb.io_velocityclusters.yaml"]
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1


def test_generated_files_parse_back_to_the_crds(crds: dict[str, dict[str, Any]]) -> None:
    for kind, names in (("VelocityCluster", CLUSTER), ("VelocityBackup", BACKUP)):
        text = (REPO / "crds" / f"vdb.io_{names.plural}.yaml").read_text()
        assert yaml.safe_load(text) == crds[kind]
    bundle = list(yaml.safe_load_all((REPO / "manifests" / "crds.yaml").read_text()))
    assert [d["spec"]["names"]["kind"] for d in bundle if d] == ["VelocityCluster", "VelocityBackup"]


@pytest.mark.parametrize("kind", ["VelocityCluster", "VelocityBackup"])
def test_schema_is_structural(crds: dict[str, dict[str, Any]], kind: str) -> None:
    """The rules of a structural schema that pydantic output could break."""
    for path, node in _walk(_schema(crds[kind])):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("type") != "null", path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node and "oneOf" not in node, path
            assert node.get("type") in {"object", "string", "integer", "number", "boolean", "array"}, path
        if "default" in node:
            assert node["default"] is not None, path


@pytest.mark.parametrize("kind", ["VelocityCluster", "VelocityBackup"])
def test_every_field_has_a_description(crds: dict[str, dict[str, Any]], kind: str) -> None:
    missing = [
        path
        for path, node in _walk(_schema(crds[kind]))
        if path and path != ".metadata" and not path.endswith(("[]", "{}"))
        and len(node.get("description", "")) < 10
    ]
    assert not missing, f"fields without a description for kubectl explain: {missing}"


def test_cluster_pinned_fields_defaults_and_bounds(crds: dict[str, dict[str, Any]]) -> None:
    spec = _schema(crds["VelocityCluster"])["properties"]["spec"]["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["replicas"]["minimum"] == 1
    assert spec["tls"]["properties"]["enabled"]["default"] is True
    assert set(spec["storage"]["properties"]) >= {"aof", "snapshots", "storageClassName"}
    assert spec["storage"]["properties"]["aof"]["properties"]["size"]["x-kubernetes-int-or-string"]
    assert set(spec["backup"]["properties"]) >= {"schedule", "retention"}
    assert spec["backup"]["required"] == ["schedule"]
    assert spec["bootstrap"]["properties"]["fromBackup"]["required"] == ["name"]
    assert "resources" in spec and "image" in spec
    status = _schema(crds["VelocityCluster"])["properties"]["status"]["properties"]
    assert set(status) >= {"conditions", "observedGeneration", "readyReplicas", "currentPrimary", "phase"}
    assert status["phase"]["enum"] == ["Pending", "Provisioning", "Ready", "Scaling", "Updating", "Degraded"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_storage_class_is_immutable_by_cel(crds: dict[str, dict[str, Any]]) -> None:
    storage = _schema(crds["VelocityCluster"])["properties"]["spec"]["properties"]["storage"]
    rules = storage["x-kubernetes-validations"]
    assert any("oldSelf.storageClassName" in r["rule"] and "immutable" in r["message"] for r in rules)


def test_cluster_subresources_and_columns(crds: dict[str, dict[str, Any]]) -> None:
    version = crds["VelocityCluster"]["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Replicas", "Ready", "Primary", "Phase", "Age"]
    assert crds["VelocityCluster"]["spec"]["names"]["shortNames"] == ["vc"]
    assert crds["VelocityCluster"]["metadata"]["name"] == "velocityclusters.vdb.io"


def test_backup_destination_requires_exactly_one(crds: dict[str, dict[str, Any]]) -> None:
    spec = _schema(crds["VelocityBackup"])["properties"]["spec"]
    assert spec["required"] == ["cluster"]
    destination = spec["properties"]["destination"]
    assert any("exists_one" in r["rule"] for r in destination["x-kubernetes-validations"])
    phase = _schema(crds["VelocityBackup"])["properties"]["status"]["properties"]["phase"]
    assert phase["enum"] == ["Pending", "Running", "Completed", "Failed"]
