"""Prometheus metrics of the lease agent (docs/observability.md), built at scrape time.

Exported by every engine, zero without `--lease-name`, so that a dashboard or alert
over them works (and is tested) the same whether or not a node elects by Lease."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from velocity_engine.replication.lease import LeaseAgent


def lease_metric_families(agent: LeaseAgent | None) -> Iterator[Any]:
    if agent is None:
        agent = _NO_LEASE
    yield GaugeMetricFamily(
        "velocity_lease_holder", "1 while this node holds the primary Lease and may write under it.",
        value=1.0 if agent.holds() else 0.0,
    )
    yield CounterMetricFamily(
        "velocity_lease_renewals", "Successful renewals of the primary Lease by this node.", value=agent.renewals,
    )
    yield CounterMetricFamily(
        "velocity_lease_renew_errors",
        "Lease agent rounds that failed (API server unreachable or refusing); a primary stops writes "
        "when they last too long.", value=agent.round_errors,
    )
    yield CounterMetricFamily(
        "velocity_lease_acquisitions",
        "Times this node became the Lease holder (election after expiry, or a switchover to it).",
        value=agent.acquisitions,
    )
    yield CounterMetricFamily(
        "velocity_lease_handovers",
        "Times this node handed the Lease to a replica in a planned switchover.", value=agent.handed_over,
    )
    yield CounterMetricFamily(
        "velocity_lease_releases",
        "Times this node emptied the Lease holder on shutdown without a successor.", value=agent.released,
    )
    yield GaugeMetricFamily(
        "velocity_lease_last_renew_timestamp_seconds",
        "Unix time of this node's last successful renewal or acquisition of the Lease (0: never).",
        value=agent.last_renew_wall,
    )


class _NoLease:
    """What the metrics read from an agent, for a node without one: all zero."""

    renewals = round_errors = acquisitions = handed_over = released = 0
    last_renew_wall = 0.0

    def holds(self) -> bool:
        return False


_NO_LEASE: Any = _NoLease()
