"""Every expression parses (promtool and promql_parser) and uses the standard labels."""

from __future__ import annotations

import json
from pathlib import Path

import promql_parser
import pytest
from velocity_dashboards.inventory import Query, all_queries, dashboard_queries
from velocity_dashboards.promql import (
    STANDARD_LABELS,
    PromQLError,
    metric_names,
    parse,
    sel,
    to_promql,
    variable_selector,
)

from tests.dashboards.conftest import REPO_ROOT, run_promtool


def _as_recording_rules(queries: list[Query], path: Path) -> None:
    # promtool has no "check this expression" command, but it parses and type-checks
    # every recording rule's expr. JSON is valid YAML.
    rules = [{"record": f"velocity_check:expr_{i}", "expr": to_promql(q.expr)} for i, q in enumerate(queries)]
    path.write_text(json.dumps({"groups": [{"name": "velocity-expressions", "rules": rules}]}))


def test_every_expression_passes_promtool(promtool: str, tmp_path: Path) -> None:
    queries = all_queries(REPO_ROOT)
    assert len(queries) > 30
    rules = tmp_path / "expressions.rules.yml"
    _as_recording_rules(queries, rules)
    res = run_promtool(promtool, "check", "rules", str(rules))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(queries)} rules found" in res.stdout


def test_promtool_check_rejects_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "broken.rules.yml"
    _as_recording_rules([Query("broken", "sum(rate(velocity_requests_total[1m])", None)], rules)
    res = run_promtool(promtool, "check", "rules", str(rules))
    assert res.returncode != 0


def test_every_expression_has_a_fixed_metric_name() -> None:
    for q in all_queries(REPO_ROOT):
        assert q.metric_names(), q.origin


def test_engine_panels_select_by_the_standard_labels() -> None:
    # Engine series by cluster, namespace and pod; series about a VelocityCluster that
    # another process writes (the operator's, Prometheus's ALERTS) by cluster and namespace:
    # their `pod` is not an engine pod. Only the kubelet's volume stats have neither.
    keep = {name: f"${name}" for name in STANDARD_LABELS}
    cluster_level = set(STANDARD_LABELS[:2])
    for q in dashboard_queries():
        if q.dashboard != "velocity-cluster" or ": variable $" in q.origin:
            continue  # variables narrow step by step: $namespace within $cluster, ...
        found: list[str] = []

        def visit(node: promql_parser.Expr, origin: str = q.origin, found: list[str] = found) -> bool:
            if isinstance(node, promql_parser.VectorSelector) and not (node.name or "").startswith("kubelet_"):
                name = str(node.name)
                labels = {m.name for m in node.matchers.matchers if m.value == f"${m.name}"}
                want = cluster_level if name.startswith("velocity_operator_") or name == "ALERTS" else set(
                    STANDARD_LABELS)
                assert labels & set(STANDARD_LABELS) == want, f"{origin}: {node} selects by {labels}, not {want}"
                found.append(name)
            return True

        promql_parser.walk(parse(to_promql(q.expr, keep)), visit)
        if "kubelet_" not in q.expr:
            assert found, q.origin


def test_to_promql_substitutes_variables() -> None:
    expr = f"sum(rate({sel('velocity_requests_total')}[$__rate_interval]))"
    assert to_promql(expr) == (
        'sum(rate(velocity_requests_total{cluster=~".*", namespace=~".*", pod=~".*"}[1m]))'
    )
    assert to_promql(expr, {"pod": "kv-0"}, rate_interval="15s") == (
        'sum(rate(velocity_requests_total{cluster=~".*", namespace=~".*", pod=~"kv-0"}[15s]))'
    )
    assert to_promql("x{a=~\"${cluster}\"}") == 'x{a=~".*"}'


def test_metric_names_walks_the_whole_expression() -> None:
    expr = ('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="1"}[5m]))) / on (pod) group_left b'
            ' + count_over_time(c[1m:10s]) + {__name__="d"} and up')
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "up"}


def test_metric_names_refuses_unparseable_and_nameless_selectors() -> None:
    with pytest.raises(PromQLError, match="does not parse"):
        metric_names("sum(rate(x[5m])")
    with pytest.raises(PromQLError, match="without a fixed metric name"):
        metric_names('{__name__=~"velocity_.*"}')


def test_variable_selector() -> None:
    assert variable_selector('label_values(velocity_ready{cluster=~"$cluster"}, namespace)') == (
        'velocity_ready{cluster=~"$cluster"}'
    )
    with pytest.raises(PromQLError):
        variable_selector("query_result(up)")
