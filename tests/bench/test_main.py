"""Which servers run side by side."""

from __future__ import annotations

from velocity_bench.main import groups
from velocity_bench.scenarios import SCENARIOS


def test_each_velocity_scenario_runs_with_its_baseline() -> None:
    got = groups(list(SCENARIOS))
    assert got == [
        ["redis", "velocity-memory"],
        ["redis-aof", "velocity"],
        ["redis-always", "velocity-always"],
        ["redis-tls", "velocity-tls"],
    ]


def test_a_scenario_without_its_partner_runs_alone() -> None:
    assert groups(["velocity", "redis-tls"]) == [["velocity"], ["redis-tls"]]
