"""Saturation: how close each engine is to a limit it cannot pass (CPU of its event loop, connections).

The engine serves every client on one asyncio event loop (one thread; the write-ahead
log's fsync thread waits on the disk, not the CPU), so its process CPU in cores is the
loop's busy fraction: near 1.0 the loop never idles, requests queue and p99 grows. The
engine exports no separate loop busy-time metric; `process_cpu_seconds_total` (its
prometheus_client process collector) is that measure. `job="velocity-engine"` keeps the
operator's own process series out when $cluster and $namespace are All.

Connections are compared with `velocity_max_connections`, the configured limit (a live
setting); at the limit new clients get BUSY (velocity_connections_rejected_total, in the
Errors row).
"""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target, Threshold
from velocity_dashboards.promql import rate, sel

ENGINE_JOB = 'job="velocity-engine"'
_CPU_THRESHOLDS = (Threshold("green"), Threshold("orange", 0.7), Threshold("red", 0.9))
_CONN_THRESHOLDS = (Threshold("green"), Threshold("orange", 0.8), Threshold("red", 0.95))


def cpu_by_pod() -> str:
    return f"sum by (pod) ({rate(sel('process_cpu_seconds_total', ENGINE_JOB))})"


def connection_use_by_pod() -> str:
    return f"max by (pod) ({sel('velocity_connections')} / {sel('velocity_max_connections')})"


def row() -> Row:
    return Row("Saturation", (
        Panel("Engine CPU (event loop busy)", "CPU seconds per second of each engine process: 1.0 is one core, "
              "the most its single event-loop thread can use. Sustained above 0.9 the loop is saturated.",
              (Target(cpu_by_pod(), "{{pod}}"),), unit="percentunit", width=8),
        Panel("Busiest event loop", "The highest engine CPU of the selection, as a share of the one core its "
              "event loop can use: orange from 70%, red from 90%.",
              (Target(f"max({cpu_by_pod()})"),), unit="percentunit", kind="stat", width=4,
              thresholds=_CPU_THRESHOLDS),
        Panel("Connections against the limit", "Open client connections as a share of each pod's configured "
              "max_connections (velocity_max_connections); at 100% new clients get BUSY.",
              (Target(connection_use_by_pod(), "{{pod}}"),), unit="percentunit", max=1, width=8),
        Panel("Fullest connection limit", "The highest share of max_connections in use on any selected pod: "
              "orange from 80%, red from 95%.",
              (Target(f"max({connection_use_by_pod()})"),), unit="percentunit", kind="stat", width=4,
              thresholds=_CONN_THRESHOLDS),
    ))
