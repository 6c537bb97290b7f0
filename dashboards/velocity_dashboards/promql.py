"""PromQL helpers: the standard selector, Grafana-variable substitution, metric names.

Every Velocity panel selects by the standard `cluster`, `namespace` and `pod` labels with
regex matchers, because Grafana's "All" value is `.*` and multi-value selections become
`(a|b)`; `=~".*"` also matches series that lack the label (a single-cluster Prometheus
without a `cluster` label keeps working).

Grafana expressions are not PromQL until their variables are replaced; `to_promql` does
that with values that keep the expression's shape, so promtool, a real Prometheus and
`promql_parser` can check exactly what the panel will run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import promql_parser

STANDARD_LABELS = ("cluster", "namespace", "pod")
RATE_INTERVAL = "$__rate_interval"

# What Grafana would put in for the built-in interval variables at a typical 1m step.
_BUILTIN_DEFAULTS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


class PromQLError(ValueError):
    """An expression that does not parse or cannot be checked; carries the expression."""

    def __init__(self, message: str, expr: str) -> None:
        super().__init__(f"{message}: {expr}")
        self.expr = expr


def _matchers(labels: tuple[str, ...], extra: tuple[str, ...]) -> str:
    return ", ".join((*(f'{label}=~"${label}"' for label in labels), *extra))


def sel(metric: str, *extra: str) -> str:
    """`metric{cluster=~"$cluster", namespace=~"$namespace", pod=~"$pod", *extra}`."""
    return f"{metric}{{{_matchers(STANDARD_LABELS, extra)}}}"


def cluster_sel(metric: str, *extra: str) -> str:
    """`metric{cluster=~"$cluster", namespace=~"$namespace", *extra}`: series about a VelocityCluster
    that another process writes (the operator, scraped with honorLabels; Prometheus's ALERTS),
    whose `pod` label is not an engine pod's, so the engine-pod selection must not filter them."""
    return f"{metric}{{{_matchers(STANDARD_LABELS[:2], extra)}}}"


def op_sel(metric: str, *extra: str, labels: tuple[str, ...] = ("namespace", "pod")) -> str:
    """Selector for the operator's series: by default its own namespace and pod.

    Series that carry a VelocityCluster's `namespace` themselves (scraped with
    honorLabels) pass `labels=("pod",)` so the operator's namespace does not filter them.
    """
    return f"{metric}{{{_matchers(labels, extra)}}}"


def rate(selector: str, fn: str = "rate") -> str:
    return f"{fn}({selector}[{RATE_INTERVAL}])"


def to_promql(expr: str, values: Mapping[str, str] | None = None, *, rate_interval: str = "1m") -> str:
    """Replace Grafana variables: `values` first, then built-ins, then `.*` for label variables.

    Every variable of ours is used inside a regex matcher, where `.*` means "All".
    """
    chosen = {**_BUILTIN_DEFAULTS, "__rate_interval": rate_interval, **(values or {})}

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return chosen.get(name, ".*")

    return _VARIABLE.sub(substitute, expr)


def parse(expr: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except (ValueError, RuntimeError) as e:
        raise PromQLError(f"does not parse ({e})", expr) from e


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects (after variable substitution).

    A selector without a fixed name (`{__name__=~"..."}`) is refused: nobody could check
    that what it selects exists.
    """
    names: set[str] = set()
    problems: list[str] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                fixed = [m.value for m in node.matchers.matchers
                         if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal]
                if fixed:
                    names.update(fixed)
                else:
                    problems.append(str(node))
        return True

    promql_parser.walk(parse(to_promql(expr)), visit)
    if problems:
        raise PromQLError(f"selector without a fixed metric name {problems}", expr)
    return names


def variable_selector(query: str) -> str:
    """The series selector inside a `label_values(selector, label)` variable query."""
    m = _LABEL_VALUES.match(query)
    if m is None:
        raise PromQLError("not a label_values(selector, label) query", query)
    return m.group("selector")
