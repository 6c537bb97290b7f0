"""The dashboard model: plain, immutable data classes, no Grafana JSON details.

Rows are built from these by the modules in `rows/`; `grafana.py` renders them. Keeping
the model this small is deliberate: every field here is one a reviewer can judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PanelKind = Literal["timeseries", "stat"]


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel. `expr` may use Grafana variables ($cluster, $__rate_interval)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Threshold:
    """A colour step: values at or above `value` take `color` (None means from -inf)."""

    color: str
    value: float | None = None


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: PanelKind = "timeseries"
    width: int = 8
    height: int = 8
    min: float | None = 0
    max: float | None = None
    thresholds: tuple[Threshold, ...] = ()
    stacked: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query template variable: `label_values(<metric selector>, <label>)`."""

    name: str
    label: str
    query: str
    multi: bool = True
    include_all: bool = True


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    file_name: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...]
    tags: tuple[str, ...] = field(default=("velocity",))

    def targets(self) -> list[tuple[Panel, Target]]:
        return [(p, t) for r in self.rows for p in r.panels for t in p.targets]
