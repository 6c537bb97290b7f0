"""tools/chart.py: the Helm chart is derived from manifests/ and crds/, and the check
names every file that drifted. (Rendering the chart with helm: tests/helm.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))

import chart  # noqa: E402  (tools/ is not a package)


def test_committed_chart_is_what_the_generator_writes() -> None:
    assert chart.check() == [], "run `make chart`"


def test_check_names_edited_missing_and_stray_files(tmp_path: Path) -> None:
    shutil.copytree(ROOT / chart.CHART_DIR, tmp_path / chart.CHART_DIR)
    base = tmp_path / chart.CHART_DIR
    (base / "values.yaml").write_text((base / "values.yaml").read_text().replace("replicaCount: 2", "replicaCount: 5"))
    (base / "templates" / "service.yaml").unlink()
    (base / "templates" / "hand-written.yaml").write_text("kind: ConfigMap\n")
    assert sorted(chart.check(tmp_path)) == sorted([
        f"{chart.CHART_DIR}/values.yaml", f"{chart.CHART_DIR}/templates/service.yaml",
        f"{chart.CHART_DIR}/templates/hand-written.yaml"])


def test_crds_are_copied_byte_for_byte() -> None:
    files = chart.render_all()
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert files[f"{chart.CHART_DIR}/crds/{crd.name}"] == crd.read_text()


def test_values_defaults_come_from_the_manifests() -> None:
    values = yaml.safe_load(chart.render_all()[f"{chart.CHART_DIR}/values.yaml"])
    deployment = yaml.safe_load((ROOT / "manifests" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert values["replicaCount"] == deployment["spec"]["replicas"]
    assert values["resources"] == pod["containers"][0]["resources"]
    assert values["podSecurityContext"] == pod["securityContext"]
    assert values["securityContext"] == pod["containers"][0]["securityContext"]
    assert values["affinity"] == pod["affinity"]
    assert values["leaderElection"] == {"enabled": True, "leaseDurationSeconds": 15, "renewDeadlineSeconds": 10,
                                        "retryPeriodSeconds": 2}


def test_template_sentinels_become_helm_expressions() -> None:
    t = chart.Template()
    doc = {"metadata": {"name": t.inline(".Values.name"), "labels": {t.entries('include "l" .'): None, "a": "b"}},
           "spec": {"list": [t.inline("x")], "res": t.block("toYaml .Values.r"),
                    t.optional("nodeSelector", ".Values.ns"): None}}
    text = t.render(doc).removeprefix(chart.TPL_HEADER)
    assert text == (
        "metadata:\n"
        "  name: {{ .Values.name }}\n"
        "  labels:\n"
        '    {{- include "l" . | nindent 4 }}\n'
        "    a: b\n"
        "spec:\n"
        "  list:\n"
        "  - {{ x }}\n"
        "  res:\n"
        "    {{- toYaml .Values.r | nindent 4 }}\n"
        "  {{- with .Values.ns }}\n"
        "  nodeSelector:\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "  {{- end }}\n")
