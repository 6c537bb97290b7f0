//! Figures for INFO and /metrics (`Db::stats`). Names follow the Python engine's
//! `stats()` and the `velocity_*` metric families the dashboards use.

/// A copy of the engine's figures at one instant.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// (epoch, seq) of the newest batch.
    pub last_epoch: u64,
    /// Sequence of the newest batch.
    pub last_seq: u64,
    /// Newest batch known fdatasync'ed.
    pub durable_seq: u64,
    /// Stored keys (expired ones not yet removed included).
    pub live_keys: u64,
    /// Keys with a TTL written since start-up (the active-expiry sample's population).
    pub keys_with_ttl: u64,
    /// Bytes in memtables (approximate).
    pub memtable_bytes: u64,
    /// Frozen memtables waiting for the flush thread.
    pub immutable_memtables: u64,
    /// (tier, tables, bytes), by tier.
    pub tiers: Vec<(u32, u64, u64)>,
    /// Tables.
    pub sstables: u64,
    /// Their bytes.
    pub sstable_bytes: u64,
    /// Current WAL segment number.
    pub wal_segment: u64,
    /// Its size.
    pub wal_segment_bytes: u64,
    /// Records appended since start.
    pub wal_appends: u64,
    /// Bytes appended since start.
    pub wal_bytes: u64,
    /// fdatasyncs since start.
    pub fsyncs: u64,
    /// Their total time.
    pub fsync_seconds_sum: f64,
    /// Histogram counts per `wal_writer::FSYNC_BUCKETS` bound, then +Inf.
    pub fsync_buckets: Vec<u64>,
    /// The last one's duration.
    pub last_fsync_seconds: f64,
    /// Age of the oldest batch not yet synced.
    pub fsync_lag_seconds: f64,
    /// The policy in force ("always", "everysec", "no").
    pub appendfsync: &'static str,
    /// Writes are refused (fail-stop or full disk).
    pub writes_refused: bool,
    /// Why.
    pub write_error: String,
    /// Memtables flushed.
    pub flushes: u64,
    /// Bytes of the tables they made.
    pub flush_bytes: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Bytes they read.
    pub compaction_bytes_read: u64,
    /// Bytes they wrote.
    pub compaction_bytes_written: u64,
    /// Their total time.
    pub compaction_seconds_sum: f64,
    /// Histogram counts per `COMPACTION_BUCKETS` bound, then +Inf.
    pub compaction_buckets: Vec<u64>,
    /// The last flush/compaction failure (they are retried), if any.
    pub background_error: String,
    /// Bytes of blocks in the block cache.
    pub block_cache_bytes: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Lookups a bloom filter rejected.
    pub bloom_negative: u64,
    /// Lookups a bloom filter let through.
    pub bloom_maybe: u64,
    /// Of those, lookups the table did not hold.
    pub bloom_false_positives: u64,
    /// Oldest batch `batches_since` can still serve.
    pub backlog_first_seq: u64,
    /// Batches held.
    pub backlog_batches: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// What the last start-up did.
    pub recovery: crate::RecoveryInfo,
}

/// Upper bounds (seconds) of the compaction duration histogram buckets (+Inf implied).
pub const COMPACTION_BUCKETS: [f64; 12] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
