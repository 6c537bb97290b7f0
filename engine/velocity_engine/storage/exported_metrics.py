"""Storage metrics for /metrics, built at scrape time (names are a contract with the dashboards)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from velocity_engine.storage.base import Storage
from velocity_engine.storage.lsm import LsmStorage
from velocity_engine.storage.wal_writer import FSYNC_BUCKETS


def storage_metric_families(storage: Storage) -> Iterator[Any]:
    """Nothing for volatile storage: no fake values."""
    if not isinstance(storage, LsmStorage):
        return
    w = storage.wal
    ws = w.stats
    yield CounterMetricFamily("velocity_wal_appends", "Records appended to the write-ahead log.", value=ws.appends)
    yield CounterMetricFamily("velocity_wal_bytes", "Bytes appended to the write-ahead log.", value=ws.bytes)
    hist = HistogramMetricFamily("velocity_wal_fsync_duration_seconds", "Time one WAL fdatasync took.")
    acc = 0
    buckets = []
    for bound, n in zip((*FSYNC_BUCKETS, float("inf")), ws.fsync_buckets, strict=True):
        acc += n
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
    hist.add_metric([], buckets, ws.fsync_seconds_sum)
    yield hist
    yield GaugeMetricFamily(
        "velocity_wal_fsync_lag_seconds",
        "Age of the oldest applied write not yet synced to disk (0 when all are).",
        value=w.fsync_lag(),
    )
    yield GaugeMetricFamily(
        "velocity_writes_refused", "1 when a storage failure made the engine refuse writes.",
        value=1.0 if storage.writes_refused else 0.0,
    )
    yield GaugeMetricFamily(
        "velocity_wal_truncated_bytes", "Bytes of a torn WAL tail dropped at the last start-up.",
        value=storage.recovery.torn_bytes,
    )
    yield GaugeMetricFamily("velocity_memtable_bytes", "Approximate bytes held in memtables.",
                            value=storage.memtable_bytes())
