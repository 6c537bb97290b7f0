"""LSM tree: memtable, SSTables per level, compaction and bloom-filter effectiveness."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    negative = rate(sel("velocity_bloom_checks_total", 'result="negative"'))
    maybe = rate(sel("velocity_bloom_checks_total", 'result="maybe"'))
    false_pos = rate(sel("velocity_bloom_false_positives_total"))
    duration = rate(sel("velocity_compaction_duration_seconds_bucket"))
    return Row("LSM tree", (
        Panel("Memtable size", "Bytes in the mutable memtable, by pod.",
              (Target(f"sum by (pod) ({sel('velocity_memtable_bytes')})", "{{pod}}"),), unit="bytes"),
        Panel("SSTables by level", "Number of SSTable files per level.",
              (Target(f"sum by (level) ({sel('velocity_sstables')})", "L{{level}}"),), stacked=True),
        Panel("SSTable bytes by level", "Bytes of SSTables per level.",
              (Target(f"sum by (level) ({sel('velocity_sstable_bytes')})", "L{{level}}"),), unit="bytes",
              stacked=True),
        Panel("Compactions", "Compactions finished per second and bytes they wrote.",
              (Target(f"sum by (pod) ({rate(sel('velocity_compactions_total'))})", "runs {{pod}}"),
               Target(f"sum by (pod) ({rate(sel('velocity_compaction_bytes_written_total'))})",
                      "bytes {{pod}}")),
              unit="short"),
        Panel("Compaction duration p99", "Tail duration of one compaction.",
              (Target(f"histogram_quantile(0.99, sum by (le, pod) ({duration}))", "{{pod}}"),), unit="s"),
        Panel("Bloom filter effectiveness",
              "Share of lookups a bloom filter answered 'definitely absent' (higher is better), and the "
              "share of 'maybe' answers that were false positives (about 1% at 10 bits/key).",
              (Target(f"sum({negative}) / clamp_min(sum({negative}) + sum({maybe}), 1e-9)", "negatives"),
               Target(f"sum({false_pos}) / clamp_min(sum({maybe}), 1e-9)", "false positives")),
              unit="percentunit", max=1),
    ))
