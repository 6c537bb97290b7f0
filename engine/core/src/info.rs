//! The INFO reply: the same JSON shape as server.py's `Server.info()`.
//!
//! The sections the Python shell owns (`config`: the reloader's state;
//! `replication`) are pushed by it through `set_info_sections` and copied in as
//! they are; everything else comes from the core's own counters. Additions of
//! the native data plane: `server.data_plane`, `server.threads` and
//! `service_time_ns` (per opcode p50/p99/p999 of the fine histogram).

use serde_json::{json, Map, Value};

use crate::error::{VError, VResult};
use crate::server::Shared;
use crate::stats::{Totals, FINE_OPS};

/// Opcodes in the order the Python enum lists them, with INFO's names.
pub const OPCODES: [(u8, &str); 24] = [
    (0x01, "hello"),
    (0x02, "ping"),
    (0x03, "info"),
    (0x10, "get"),
    (0x11, "set"),
    (0x12, "del"),
    (0x13, "exists"),
    (0x14, "incr"),
    (0x15, "expire"),
    (0x16, "persist"),
    (0x17, "ttl"),
    (0x18, "cas"),
    (0x20, "mget"),
    (0x21, "mset"),
    (0x22, "scan"),
    (0x30, "snapshot_begin"),
    (0x31, "snapshot_read"),
    (0x40, "repl_sync"),
    (0x41, "repl_snapshot"),
    (0x42, "repl_batches"),
    (0x43, "repl_heartbeat"),
    (0x44, "repl_ack"),
    (0x45, "promote"),
    (0x46, "replica_of"),
];

/// Resident memory of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The whole INFO document.
pub fn document(shared: &Shared) -> Map<String, Value> {
    let s = &shared.settings;
    let totals = shared.totals();
    let st = shared.keyspace.store().stats();
    let c = &shared.counters;
    let extra = shared.info_sections();
    let mut requests = Map::new();
    let mut latency = Map::new();
    let mut service = Map::new();
    for (op, name) in OPCODES {
        let n = totals.requests[op as usize];
        if n == 0 {
            continue;
        }
        requests.insert(name.into(), json!(n));
        latency.insert(
            name.into(),
            json!({
                "p50_us": totals.bucket_quantile_us(op as usize, 0.5),
                "p99_us": totals.bucket_quantile_us(op as usize, 0.99),
            }),
        );
        if (op as usize) < FINE_OPS {
            service.insert(name.into(), service_quantiles(&totals, op as usize));
        }
    }
    let mut doc = Map::new();
    doc.insert(
        "server".into(),
        json!({
            "version": s.version,
            "protocol_version": velocity_proto::PROTOCOL_VERSION,
            "node_id": s.node_id,
            "pid": std::process::id(),
            "uptime_s": round3(shared.started.elapsed().as_secs_f64()),
            "role": if shared.repl.is_primary() { "primary" } else { "replica" },
            "tls": s.tls.is_some(),
            "auth": shared.credentials.is_some(),
            "port": shared.port,
            "data_plane": "native",
            "threads": shared.workers.len(),
        }),
    );
    doc.insert(
        "clients".into(),
        json!({
            "connected": c.connections(),
            "unauthenticated": c.unauthenticated(),
            "accepted_total": c.accepted_total(),
            "rejected_total": c.rejected_total(),
            "auth_failures_total": c.auth_failures(),
        }),
    );
    doc.insert("keys".into(), json!(st.keys));
    doc.insert("keys_with_ttl".into(), json!(st.keys_with_ttl));
    doc.insert("expired_keys_total".into(), json!(shared.keyspace.expired_total()));
    doc.insert(
        "memory".into(),
        json!({"rss_bytes": rss_bytes(), "data_bytes": st.data_bytes}),
    );
    doc.insert(
        "stats".into(),
        json!({
            "requests": requests,
            "errors": totals.errors.iter().sum::<u64>(),
            "bytes_in": totals.bytes_in,
            "bytes_out": totals.bytes_out,
        }),
    );
    doc.insert("latency".into(), Value::Object(latency));
    doc.insert("service_time_ns".into(), Value::Object(service));
    let (storage, persistence) = storage_sections(&st, shared.keyspace.store().engine_stats().as_ref());
    doc.insert("storage".into(), storage);
    doc.insert("persistence".into(), persistence);
    doc.insert("replication".into(), shared.repl.info(shared));
    doc.insert(
        "config".into(),
        extra
            .get("config")
            .cloned()
            .unwrap_or_else(|| json!({"max_connections": shared.max_connections()})),
    );
    doc.insert(
        "limits".into(),
        json!({
            "max_frame_bytes": s.max_frame_bytes,
            "max_key_bytes": s.max_key_bytes,
            "max_value_bytes": s.max_value_bytes,
            "max_connections": shared.max_connections(),
        }),
    );
    doc
}

/// INFO's `storage` and `persistence` sections, with lsm.py `stats()`'s field
/// names (memory storage: the three figures it has and `appendfsync: none`).
pub fn storage_sections(st: &crate::store::StoreStats, lsm: Option<&velocity_lsm::Stats>) -> (Value, Value) {
    let Some(l) = lsm else {
        return (
            json!({"engine": st.engine, "keys_with_ttl": st.keys_with_ttl, "data_bytes": st.data_bytes}),
            json!({"appendfsync": "none", "last_fsync_ms": 0}),
        );
    };
    let mut tiers = Map::new();
    for (tier, tables, bytes) in &l.tiers {
        tiers.insert(tier.to_string(), json!({"tables": tables, "bytes": bytes}));
    }
    let storage = json!({
        "engine": st.engine,
        "keys_with_ttl": st.keys_with_ttl,
        "data_bytes": st.data_bytes,
        "memtable_bytes": l.memtable_bytes,
        "immutable_memtables": l.immutable_memtables,
        "sstables": l.sstables,
        "sstable_bytes": l.sstable_bytes,
        "tiers": tiers,
        "wal_bytes": l.wal_segment_bytes,
        "wal_segment": l.wal_segment,
        "flushes": l.flushes,
        "flush_bytes": l.flush_bytes,
        "compactions": l.compactions,
        "compaction_bytes_written": l.compaction_bytes_written,
        "block_cache": {"bytes": l.block_cache_bytes, "hits": l.block_cache_hits, "misses": l.block_cache_misses},
        "bloom": {"negative": l.bloom_negative, "maybe": l.bloom_maybe, "false_positives": l.bloom_false_positives},
        "recovery": {
            "segments": l.recovery.segments,
            "batches": l.recovery.batches,
            "torn_bytes": l.recovery.torn_bytes,
            "seconds": round3(l.recovery.seconds),
        },
        // Native additions: the commit log's position and how far it is synced.
        "last_seq": l.last_seq,
        "durable_seq": l.durable_seq,
    });
    let persistence = json!({
        "appendfsync": l.appendfsync,
        "last_fsync_ms": round3(l.last_fsync_seconds * 1000.0),
        "fsync_lag_s": round3(l.fsync_lag_seconds),
        "fsyncs": l.fsyncs,
        "writes_refused": l.writes_refused,
        "write_error": l.write_error,
    });
    (storage, persistence)
}

fn service_quantiles(t: &Totals, op: usize) -> Value {
    json!({
        "p50": t.fine_quantile_ns(op, 0.5),
        "p99": t.fine_quantile_ns(op, 0.99),
        "p999": t.fine_quantile_ns(op, 0.999),
    })
}

/// The INFO reply's JSON: everything, or one top-level section.
pub fn render(shared: &Shared, section: &str) -> VResult<String> {
    let mut doc = document(shared);
    if !section.is_empty() {
        let Some(v) = doc.remove(section) else {
            let mut have: Vec<&String> = doc.keys().collect();
            have.sort();
            let have: Vec<&str> = have.iter().map(|s| s.as_str()).collect();
            return Err(VError::invalid(format!(
                "no INFO section '{section}'; have {}",
                have.join(", ")
            )));
        };
        let mut one = Map::new();
        one.insert(section.into(), v);
        doc = one;
    }
    Ok(Value::Object(doc).to_string())
}
