"""Storage metrics for /metrics, built at scrape time (names are a contract with the dashboards)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from velocity_engine.storage.base import Storage
from velocity_engine.storage.compaction import DURATION_BUCKETS
from velocity_engine.storage.lsm import LsmStorage
from velocity_engine.storage.snapshot_exporter import SnapshotExporter, SnapshotFigures
from velocity_engine.storage.wal_writer import FSYNC_BUCKETS


def _histogram(name: str, help_text: str, bounds: tuple[float, ...], counts: list[int], total: float) -> Any:
    hist = HistogramMetricFamily(name, help_text)
    acc = 0
    buckets = []
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        acc += n
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
    hist.add_metric([], buckets, total)
    return hist


def snapshot_metric_families(f: SnapshotFigures) -> Iterator[Any]:
    """The `velocity_snapshot*` families, from the Python exporter or the native core's figures."""
    yield GaugeMetricFamily(
        "velocity_snapshot_last_success_timestamp_seconds",
        "When the last snapshot finished writing (Unix time; 0: none since start).",
        value=f.last_success_ts,
    )
    yield GaugeMetricFamily("velocity_snapshot_bytes", "Size of the last snapshot file.", value=f.last_bytes)
    yield GaugeMetricFamily("velocity_snapshot_duration_seconds", "Time the last snapshot took to write.",
                            value=f.last_seconds)
    yield CounterMetricFamily("velocity_snapshots", "Snapshots written.", value=f.completed)
    yield GaugeMetricFamily("velocity_snapshot_files", "Snapshot files held now (writing, ready, being read).",
                            value=f.files)
    yield GaugeMetricFamily("velocity_snapshot_disk_bytes", "Bytes the held snapshot files take (or will).",
                            value=f.disk_bytes)
    yield CounterMetricFamily("velocity_snapshots_refused",
                              "SNAPSHOT_BEGINs refused (file, byte or free-space limits; BUSY).", value=f.refused)
    yield CounterMetricFamily("velocity_snapshots_failed", "Snapshots that failed while being written.",
                              value=f.failed)
    yield CounterMetricFamily("velocity_snapshots_expired", "Ready snapshots deleted unread after snapshot_idle_s.",
                              value=f.expired)


def storage_metric_families(storage: Storage, snapshots: SnapshotExporter | None = None) -> Iterator[Any]:
    """Nothing about logs and tables for volatile storage: no fake values."""
    if snapshots is not None:
        yield from snapshot_metric_families(snapshots.figures())
    if not isinstance(storage, LsmStorage):
        return
    w = storage.wal
    ws = w.stats
    yield CounterMetricFamily("velocity_wal_appends", "Records appended to the write-ahead log.", value=ws.appends)
    yield CounterMetricFamily("velocity_wal_bytes", "Bytes appended to the write-ahead log.", value=ws.bytes)
    yield _histogram("velocity_wal_fsync_duration_seconds", "Time one WAL fdatasync took.",
                     FSYNC_BUCKETS, ws.fsync_buckets, ws.fsync_seconds_sum)
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
    tables = GaugeMetricFamily("velocity_sstables", "SSTables, by level (compaction tier).", labels=["level"])
    tbytes = GaugeMetricFamily("velocity_sstable_bytes", "Bytes of SSTables, by level (compaction tier).",
                               labels=["level"])
    for tier, (n, b) in sorted(storage.tables_by_tier().items()):
        tables.add_metric([str(tier)], n)
        tbytes.add_metric([str(tier)], b)
    yield tables
    yield tbytes
    cs = storage.compaction_stats
    yield CounterMetricFamily("velocity_compactions", "Compactions completed.", value=cs.compactions)
    yield CounterMetricFamily("velocity_compaction_bytes_written", "Bytes written by compactions.",
                              value=cs.bytes_written)
    yield _histogram("velocity_compaction_duration_seconds", "Time one compaction took.",
                     DURATION_BUCKETS, cs.buckets, cs.seconds_sum)
    yield CounterMetricFamily("velocity_memtable_flushes", "Memtables flushed to SSTables.", value=storage.flushes)
    bs = storage.bloom_stats
    checks = CounterMetricFamily("velocity_bloom_checks", "Bloom filter checks on table lookups, by result.",
                                 labels=["result"])
    checks.add_metric(["negative"], bs.negative)
    checks.add_metric(["maybe"], bs.maybe)
    yield checks
    yield CounterMetricFamily("velocity_bloom_false_positives",
                              "Lookups a bloom filter let through that the table did not hold.",
                              value=bs.false_positive)
    bc = storage.block_cache
    yield GaugeMetricFamily("velocity_block_cache_bytes", "Bytes of SSTable blocks in the block cache.", value=bc.used)
