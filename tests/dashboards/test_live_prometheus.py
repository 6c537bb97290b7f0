"""A real Prometheus scrapes a live two-pod cluster under load; the main dashboard answers.

The cluster is a primary and a replica streaming from it (real `velocity-engine`
processes sharing one CA and token, tests/integration/replication/cluster.py), scraped as
pods obs-test-0 and obs-test-1. Each query runs exactly as Grafana would send it with
both pods selected ($__rate_interval at 4x the 1s scrape interval, as Grafana computes
it), and must return at least one series with a finite value. The alert rules are loaded
too and must all evaluate without error against the live data.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
from velocity_dashboards import catalog
from velocity_dashboards.inventory import dashboard_queries
from velocity_dashboards.promql import to_promql, variable_selector
from velocity_dashboards.rules import RULES_FILE

from tests.dashboards.conftest import REPO_ROOT
from tests.dashboards.load import LoadDriver
from tests.dashboards.prometheus_proc import PrometheusProcess, ScrapeTarget
from tests.dashboards.test_exported import operator_query
from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until

CLUSTER = {"cluster": "obs-test", "namespace": "velocity-test"}
PRIMARY, REPLICA = "obs-test-0", "obs-test-1"
# The variable values Grafana substitutes with both pods selected.
LABELS = {**CLUSTER, "pod": f"({PRIMARY}|{REPLICA})"}
RATE_INTERVAL = "4s"
# The smallest memtable the engine accepts, so the load flushes SSTables and compacts
# within seconds and the LSM panels have data.
SMALL_MEMTABLE = {"VELOCITY_MEMTABLE_BYTES": str(64 * 1024)}


class Live:
    def __init__(self, prom: PrometheusProcess, load: LoadDriver, replica: Node) -> None:
        self.prom = prom
        self.load = load
        self.replica = replica


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("live")
    cluster = Cluster(base / "cluster")
    try:
        primary = cluster.node("primary", start=False)
        replica = cluster.node("replica", "--replica-of", f"vdb://127.0.0.1:{primary.port}", start=False)
        for node in (primary, replica):
            node.env.update(SMALL_MEMTABLE)
            node.start()
        wait_until(lambda: primary.repl()["replicas_connected"] == 1, 30, 0.1, "the replica to connect")

        async def snapshot() -> None:  # what a backup does (admin token); the snapshot panels need one
            async with primary.admin_pool() as vdb:
                await vdb.snapshot(base / "first.vsnap")

        asyncio.run(snapshot())
        targets = [ScrapeTarget("velocity-engine", f"127.0.0.1:{node.metrics_port}", {**CLUSTER, "pod": pod})
                   for node, pod in ((primary, PRIMARY), (replica, REPLICA))]
        with PrometheusProcess(base / "prometheus", targets, [REPO_ROOT / RULES_FILE]) as prom, \
                LoadDriver(primary.pool) as load:
            wait_until(lambda: load.ops > 0 or load.failure, 30, 0.05, "the load driver's first requests")
            load.check()
            yield Live(prom, load, replica)
    finally:
        cluster.close()


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def _engine_queries() -> list[tuple[str, str]]:
    out = []
    for q in dashboard_queries():
        if q.dashboard != "velocity-cluster" or ": variable $" in q.origin:
            continue
        if any(n.startswith("kubelet_") for n in q.metric_names()):
            continue  # kubelet volume stats: no kubelet here (the allowlist in test_exported.py)
        if operator_query(q):
            continue  # needs the operator too: test_operator_exported.py runs these with a real one
        out.append((q.origin, to_promql(q.expr, LABELS, rate_interval=RATE_INTERVAL)))
    return out


def test_scrape_targets_are_up(live: Live) -> None:
    def both_up() -> set[str]:
        pods = {r["metric"]["pod"] for r in live.prom.query('up{job="velocity-engine"} == 1')}
        return pods if len(pods) == 2 else set()

    assert wait_until(both_up, 30, 0.2, "both targets up") == {PRIMARY, REPLICA}


def test_replication_panels_show_the_live_topology(live: Live) -> None:
    def value(expr: str) -> dict[str, float]:
        return {r["metric"].get("role") or r["metric"].get("pod", ""): float(r["value"][1])
                for r in live.prom.query(to_promql(expr, LABELS))}

    roles = wait_until(lambda: value('sum by (role) (velocity_replication_role{cluster=~"$cluster"})'),
                       30, 0.2, "roles")
    assert roles == {"primary": 1.0, "replica": 1.0}
    connected = value('max by (pod) (velocity_replicas_connected{cluster=~"$cluster"})')
    assert connected == {PRIMARY: 1.0, REPLICA: 0.0}


@pytest.mark.parametrize(("origin", "expr"), _engine_queries(), ids=[o for o, _ in _engine_queries()])
def test_main_dashboard_query_returns_data(live: Live, origin: str, expr: str) -> None:
    result: list[dict[str, Any]] = []

    def answered() -> bool:
        live.load.check()
        result[:] = live.prom.query(expr)
        return _finite(result)

    try:
        wait_until(answered, 45, 0.25, f"{origin} to return a finite value")
    except TimeoutError:
        pytest.fail(f"{origin}: no finite result from\n  {expr}\n  last answer: {result}\n{live.prom.log()}")


def test_template_variables_list_the_live_pods(live: Live) -> None:
    for v in catalog.cluster_dashboard().variables:
        selector = to_promql(variable_selector(v.query), LABELS)

        def values(selector: str = selector, label: str = v.name) -> set[str]:
            series = live.prom.api("series", **{"match[]": selector})
            return {s[label] for s in series if label in s}

        expected = {PRIMARY, REPLICA} if v.name == "pod" else {CLUSTER[v.name]}
        with contextlib.suppress(TimeoutError):
            wait_until(lambda f=values, e=expected: f() == e, 30, 0.2, f"${v.name} values")
        assert values() == expected, v.name


def test_alert_rules_evaluate_cleanly_against_live_data(live: Live) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in live.prom.api("rules")["groups"] for r in g["rules"]]
        # lastEvaluation stays at the zero time until the rule has run once.
        done = rules and all(not r["lastEvaluation"].startswith("0001-") for r in rules)
        return rules if done else None

    rules = wait_until(evaluated, 30, 0.2, "every rule to be evaluated once")
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad
    # Nothing may even be pending, except an alert on this machine's disk speed: a busy
    # shared disk can push one fsync over 50 ms, and that is not the engine's fault.
    disk_bound = {"VelocityFsyncLatencyHigh"}
    active = {r["name"]: r["state"] for r in rules
              if r.get("state") == "firing" or (r.get("state") == "pending" and r["name"] not in disk_bound)}
    assert active == {}, "a healthy engine under load must not alert"


def test_an_unknown_metric_returns_nothing(live: Live) -> None:
    # The control for the query test above: an empty answer is possible and is caught.
    wait_until(lambda: live.prom.query("velocity_requests_total"), 30, 0.2, "first samples")
    assert live.prom.query('velocity_requests_total{pod="no-such-pod"}') == []
    assert live.prom.query("velocity_no_such_metric") == []


def test_load_actually_ran(live: Live) -> None:
    wait_until(lambda: live.load.wrong_type > 0, 30, 0.05, "a provoked WRONG_TYPE error")
    assert live.load.ops > 100


def test_instance_down_goes_pending_when_a_pod_dies(live: Live) -> None:
    # Last in this module: it kills the replica. The alert's selector and labels must
    # match what the scrape really produces; it needs 2 minutes to fire, so pending it is.
    live.replica.kill()

    def pending() -> list[dict[str, Any]]:
        rules = [r for g in live.prom.api("rules")["groups"] for r in g["rules"]
                 if r["name"] == "VelocityInstanceDown"]
        return [a for r in rules for a in r.get("alerts", []) if a["state"] == "pending"]

    alerts = wait_until(pending, 30, 0.2, "VelocityInstanceDown to go pending")
    assert [(a["labels"]["pod"], a["labels"]["cluster"], a["labels"]["severity"]) for a in alerts] == [
        (REPLICA, CLUSTER["cluster"], "critical")
    ]
