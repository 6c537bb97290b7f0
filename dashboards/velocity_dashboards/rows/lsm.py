"""LSM tree: memtable, SSTables per level, flushes and compaction, bloom filters, block cache."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    negative = rate(sel("velocity_bloom_checks_total", 'result="negative"'))
    maybe = rate(sel("velocity_bloom_checks_total", 'result="maybe"'))
    false_pos = rate(sel("velocity_bloom_false_positives_total"))
    duration = rate(sel("velocity_compaction_duration_seconds_bucket"))
    return Row("LSM tree", (
        Panel("Memtable and block cache", "Bytes in memtables (flushed to an SSTable at --memtable-bytes) and "
              "in the SSTable block cache.",
              (Target(f"sum by (pod) ({sel('velocity_memtable_bytes')})", "memtable {{pod}}"),
               Target(f"sum by (pod) ({sel('velocity_block_cache_bytes')})", "block cache {{pod}}")),
              unit="bytes"),
        Panel("SSTables by level", "SSTable files per level (compaction tier), all selected pods.",
              (Target(f"sum by (level) ({sel('velocity_sstables')})", "level {{level}}"),), stacked=True),
        Panel("SSTable bytes by level", "Bytes of SSTables per level (compaction tier), all selected pods.",
              (Target(f"sum by (level) ({sel('velocity_sstable_bytes')})", "level {{level}}"),), unit="bytes",
              stacked=True),
        Panel("Flushes and compactions", "Memtables flushed and compactions finished, per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_memtable_flushes_total'))})", "flushes {{pod}}"),
               Target(f"sum by (pod) ({rate(sel('velocity_compactions_total'))})", "compactions {{pod}}")),
              unit="ops"),
        Panel("Compaction write rate", "Bytes written by compactions per second (rate-limited by "
              "--compaction-rate-bytes); compare with the log's bytes for write amplification.",
              (Target(f"sum by (pod) ({rate(sel('velocity_compaction_bytes_written_total'))})", "{{pod}}"),),
              unit="Bps"),
        Panel("Compaction duration p99", "Tail duration of one compaction.",
              (Target(f"histogram_quantile(0.99, sum by (le, pod) ({duration}))", "{{pod}}"),), unit="s"),
        Panel("Bloom filter effectiveness",
              "Share of table lookups a bloom filter answered 'definitely absent' (higher is better), and "
              "the share of 'maybe' answers that were false positives (about 1% at 10 bits/key).",
              (Target(f"sum({negative}) / clamp_min(sum({negative}) + sum({maybe}), 1e-9)", "negatives"),
               Target(f"sum({false_pos}) / clamp_min(sum({maybe}), 1e-9)", "false positives")),
              unit="percentunit", max=1, width=16),
    ))
