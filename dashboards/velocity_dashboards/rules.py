"""The alert rules: one plain Prometheus rules file is the source, a PrometheusRule wraps it.

The plain file (manifests/monitoring/velocity.rules.yml) is what promtool checks and
unit-tests and what a Prometheus without the operator loads; the PrometheusRule for the
prometheus-operator is generated from it so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = Path("manifests/monitoring/velocity.rules.yml")


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


def prometheus_rule(path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "velocity-alerts",
            "labels": {"app.kubernetes.io/part-of": "velocity", "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {"groups": load_groups(path)},
    }
