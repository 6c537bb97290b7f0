"""Every metric a dashboard or alert uses is exported by a running Velocity process.

Names that no Velocity process exports come from Prometheus itself or the kubelet; they
are allowed only through EXTERNAL below, and every entry there must still be in use.

The engine is checked here by scraping a real engine process; the operator's metrics by
scraping a real operator process in test_operator_exported.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from velocity_dashboards.inventory import Query, all_queries

from tests.dashboards.conftest import REPO_ROOT
from tests.support.engine_proc import EngineProcess, wait_until

EXTERNAL = {
    "up": "written by Prometheus for every scrape target",
    "ALERTS": "written by Prometheus for every pending or firing alert (the Firing alerts stat)",
    "kubelet_volume_stats_available_bytes": "kubelet volume stats (volume filling)",
    "kubelet_volume_stats_capacity_bytes": "kubelet volume stats (volume filling)",
    "kubelet_volume_stats_used_bytes": "kubelet volume stats (volume usage panel)",
}


def exported_sample_names(text: str) -> set[str]:
    """Sample names as a query sees them (`x_total`, `x_bucket`, `x_sum`, ...)."""
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def operator_metric(name: str) -> bool:
    return name.startswith("velocity_operator_")


def operator_query(q: Query) -> bool:
    """A query that needs the operator's metrics (alone, or beside the engine's)."""
    return q.dashboard == "velocity-operator" or any(operator_metric(n) for n in q.metric_names())


def missing_names(queries: list[Query], exported: set[str], *, operator: bool | None = None) -> set[str]:
    """Names used by `queries` that are neither exported nor external. `operator`: only the
    operator's names (True), only the others (False), or all (None): a cluster-dashboard
    query may use both, and each process is checked for its own."""
    return {
        f"{q.origin}: {name}"
        for q in queries
        for name in q.metric_names()
        if name not in exported and name not in EXTERNAL
        and (operator is None or operator_metric(name) == operator)
    }


def test_every_metric_used_is_exported_by_a_running_engine(tmp_path: Path) -> None:
    queries = [q for q in all_queries(REPO_ROOT) if q.dashboard != "velocity-operator"]
    # Some series exist only once something happened (per-level SSTable gauges after the
    # first flush), so write more than the smallest memtable holds, then poll the scrape.
    env = {"VELOCITY_MEMTABLE_BYTES": str(64 * 1024)}
    with EngineProcess(tmp_path / "engine", env=env) as eng:
        async def write() -> None:
            async with eng.pool() as vdb:
                for i in range(512):
                    await vdb.set(f"k{i}", "v" * 256)
                await vdb.get("absent")

        asyncio.run(write())
        exported: set[str] = set()

        def all_exported() -> bool:
            exported.update(exported_sample_names(eng.metrics()))
            return not missing_names(queries, exported, operator=False)

        with contextlib.suppress(TimeoutError):
            wait_until(all_exported, 20, 0.1, "every used metric in the engine's /metrics")
    assert "velocity_requests_total" in exported
    assert {"velocity_max_connections", "process_cpu_seconds_total"} <= exported
    missing = missing_names(queries, exported, operator=False)
    assert not missing, "metrics used but not exported by the engine:\n" + "\n".join(sorted(missing))


def test_the_external_allowlist_has_no_stale_entries() -> None:
    used = {name for q in all_queries(REPO_ROOT) for name in q.metric_names()}
    assert set(EXTERNAL) <= used


def test_exported_sample_names_parses_the_exposition_format() -> None:
    text = (
        "# TYPE velocity_requests counter\n"
        'velocity_requests_total{op="get"} 3\n'
        "# TYPE velocity_request_duration_seconds histogram\n"
        'velocity_request_duration_seconds_bucket{op="get",le="+Inf"} 3\n'
        'velocity_request_duration_seconds_sum{op="get"} 0.1\n'
        'velocity_request_duration_seconds_count{op="get"} 3\n'
    )
    assert exported_sample_names(text) == {
        "velocity_requests_total",
        "velocity_request_duration_seconds_bucket",
        "velocity_request_duration_seconds_sum",
        "velocity_request_duration_seconds_count",
    }
