"""Keys and memory."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    return Row("Keys and memory", (
        Panel("Keys", "Keys stored, and those carrying a TTL, by pod.",
              (Target(f"sum by (pod) ({sel('velocity_keys')})", "keys {{pod}}"),
               Target(f"sum by (pod) ({sel('velocity_keys_with_ttl')})", "with TTL {{pod}}"))),
        Panel("Keys expired", "Keys removed because their TTL passed, per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_expired_keys_total'))})", "{{pod}}"),), unit="ops"),
        Panel("Data and resident memory", "Bytes of keys and values held, against the process's RSS.",
              (Target(f"sum by (pod) ({sel('velocity_data_bytes')})", "data {{pod}}"),
               Target(f"sum by (pod) ({sel('velocity_memory_rss_bytes')})", "RSS {{pod}}")),
              unit="bytes"),
    ))
