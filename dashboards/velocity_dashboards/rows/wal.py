"""Log: write-ahead-log appends, bytes, fsync latency and lag, and write refusal."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target, Threshold
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    fsync = rate(sel("velocity_wal_fsync_duration_seconds_bucket"))
    return Row("Write-ahead log", (
        Panel("Log appends", "Records appended to the write-ahead log per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_wal_appends_total'))})", "{{pod}}"),), unit="ops"),
        Panel("Log bytes written", "Bytes appended to the write-ahead log per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_wal_bytes_total'))})", "{{pod}}"),), unit="Bps"),
        Panel("fsync latency p50 / p99", "Duration of each log fdatasync; under appendfsync always the replies "
              "wait for it (group commit).",
              (Target(f"histogram_quantile(0.5, sum by (le, pod) ({fsync}))", "p50 {{pod}}"),
               Target(f"histogram_quantile(0.99, sum by (le, pod) ({fsync}))", "p99 {{pod}}")),
              unit="s"),
        Panel("fsync lag", "Age of the oldest applied write not yet synced (about 1s at most under "
              "appendfsync everysec; unbounded under `no`, where the OS decides).",
              (Target(f"max by (pod) ({sel('velocity_wal_fsync_lag_seconds')})", "{{pod}}"),), unit="s"),
        Panel("Writes refused", "1 once a failed write or fsync made the pod refuse writes (until restarted).",
              (Target(f"max by (pod) ({sel('velocity_writes_refused')})", "{{pod}}"),), max=1,
              thresholds=(Threshold("green"), Threshold("red", 1))),
        Panel("Torn log tail dropped at start", "Bytes of an interrupted last append that recovery dropped "
              "when the pod last started (a crash mid-write; never acknowledged data).",
              (Target(f"max by (pod) ({sel('velocity_wal_truncated_bytes')})", "{{pod}}"),), unit="bytes"),
    ))
