"""The alert rules: one rules file is the source; the plain rules file and a PrometheusRule are generated.

The source (dashboards/rules/velocity.rules.yml) is a Prometheus rules file without
`runbook_url` annotations. `generated_groups` adds to every alert the absolute runbook URL
built from one base (settings.py); the result is written as the plain file
(manifests/monitoring/velocity.rules.yml: what promtool checks and unit-tests and what a
Prometheus without the operator loads) and wrapped in the PrometheusRule for the
prometheus-operator, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from velocity_dashboards.settings import runbook_url

SOURCE_FILE = Path("dashboards/rules/velocity.rules.yml")  # edited by hand
RULES_FILE = Path("manifests/monitoring/velocity.rules.yml")  # generated from SOURCE_FILE


class RulesFileError(ValueError):
    """The rules file is not shaped like a Prometheus rules file."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True)
class Rule:
    group: str
    name: str  # the alert or recording rule name
    expr: str
    is_alert: bool


def load_groups(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise RulesFileError(path, "no top-level 'groups' list")
    groups: list[dict[str, Any]] = doc["groups"]
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("rules"), list) or "name" not in g:
            raise RulesFileError(path, f"group without a name or rules: {g!r}")
    return groups


def rules(path: Path) -> list[Rule]:
    out = []
    for g in load_groups(path):
        for r in g["rules"]:
            name = r.get("alert") or r.get("record")
            if not name or "expr" not in r:
                raise RulesFileError(path, f"rule without a name or expr in group {g['name']}: {r!r}")
            out.append(Rule(g["name"], name, str(r["expr"]), "alert" in r))
    return out


def generated_groups(source: Path, runbook_base: str) -> list[dict[str, Any]]:
    """The source's groups with `runbook_url` added to every alert (after its other annotations)."""
    groups = load_groups(source)
    for g in groups:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            annotations = r.setdefault("annotations", {})
            if "runbook_url" in annotations:
                raise RulesFileError(source, f"{r['alert']}: runbook_url is generated, do not set it in the source")
            annotations["runbook_url"] = runbook_url(runbook_base, r["alert"])
    return groups


def prometheus_rule(path: Path) -> dict[str, Any]:
    """The PrometheusRule wrapping the (generated) plain rules file at `path`."""
    return wrap(load_groups(path))


def wrap(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule holding `groups`."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "velocity-alerts",
            "labels": {"app.kubernetes.io/part-of": "velocity", "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {"groups": groups},
    }
