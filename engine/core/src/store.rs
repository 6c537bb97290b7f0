//! The contract between the command layer ([`crate::keyspace`]) and storage.
//!
//! It has the shape of the native storage engine (`velocity-lsm`: `commit(epoch,
//! mutations) -> Commit { seq, durability wait }`, `get`, `scan_from`,
//! `batches_since`, `stats`, `close`) so that engine plugs in where
//! [`crate::memory::MemoryStore`] is used today.
//!
//! Threading: a store is shared by every worker thread (`Send + Sync`). Each call
//! is atomic on its own: `commit` applies all its mutations or none and no reader
//! sees part of a batch; `get_many` and `scan_from` read one consistent state.
//! Read-modify-write sequences (INCR, NX/XX, CAS) are made atomic *above* the
//! store by the keyspace's per-key stripe locks, which every writer takes.
//!
//! Expiry: records carry absolute `expire_at_ms` (Unix ms, 0 = never); the policy
//! (lazy and active expiry) lives in the keyspace. A store keeps expired records
//! until a delete mutation arrives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::record_buf::Value;

/// A key as the store contract passes it (the memory store keeps its keys
/// inside its records, record_buf.rs).
pub type Key = Arc<[u8]>;

/// A stored value. `value` is reference counted (its count sits next to its
/// bytes, record_buf.rs): reading a record copies no bytes and allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The value kind (protocol.md "Keys and values"): 0 bytes, 1 string, 2 int, 3 JSON.
    pub kind: u8,
    /// The value's bytes.
    pub value: Value,
    /// Absolute expiry, Unix time in ms; 0 means no expiry.
    pub expire_at_ms: i64,
}

/// One write of a batch: a record to store, or `None` to delete the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub key: Key,
    pub record: Option<Record>,
}

/// Completes when a committed batch is as durable as the store promises.
pub type DurabilityWait = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What `commit` returns.
pub struct Commit {
    /// The batch's sequence number (the position in the commit log).
    pub seq: u64,
    /// `None` when the batch is already durable enough to acknowledge; otherwise
    /// a reply that depends on the batch waits for this.
    pub durable: Option<DurabilityWait>,
}

/// Storage failures. A store that cannot make a write durable refuses writes
/// from then on (answered with `WRITES_REFUSED`; reads still work).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("writes refused: {0}")]
    WritesRefused(String),
    #[error("{0} is not supported by this store")]
    Unsupported(&'static str),
    /// Stored bytes fail a checksum or do not parse: the read is refused, never answered wrongly.
    #[error("storage corruption: {0}")]
    Corruption(String),
    /// A setting the store cannot take (e.g. an unknown `appendfsync` policy).
    #[error("invalid storage setting: {0}")]
    InvalidSetting(String),
    /// The log no longer holds batch `requested` (the oldest held is `oldest`): full copy.
    #[error("batch {requested} has left the backlog (oldest held: {oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// Sync replication: not acknowledged by enough replicas in time (or the node
    /// stepped down). The write is in the log; its outcome is unknown to the client.
    #[error("{0}")]
    NotAcknowledged(String),
    /// A replicated batch that does not continue the log, or does not parse.
    #[error("bad replicated batch: {0}")]
    BadBatch(String),
}

/// A consistent copy of a store: its log position (epoch, seq) and every record.
pub type FullCopy = ((u64, u64), Vec<(Key, Record)>);

/// Figures for INFO and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// `memory` or `lsm`.
    pub engine: &'static str,
    /// Keys stored, expired ones not yet removed included.
    pub keys: u64,
    /// Keys that carry an expiry.
    pub keys_with_ttl: u64,
    /// Bytes of keys and values held.
    pub data_bytes: u64,
}

/// A storage engine behind the keyspace (see the module documentation).
pub trait Store: Send + Sync + 'static {
    /// The stored record, expired or not (the caller decides).
    /// An error only when stored bytes fail their checksum (never wrong data).
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError>;

    /// Records for several keys read from one consistent state (MGET).
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Record>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Applies every mutation in order, atomically, as one numbered batch.
    fn commit(&self, epoch: u64, mutations: Vec<Mutation>) -> Result<Commit, StoreError>;

    /// Up to `limit` records with key >= `start`, in byte order, from one consistent state.
    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Vec<(Key, Record)>, StoreError>;

    // -- replication (docs/formats/replication.md, stream version 2) -----------------
    // The log's own bytes are what a primary ships and a replica logs: a store
    // encodes a batch once (velocity_lsm::batch) and keeps the newest in a backlog.

    /// The log position: (epoch, seq) of the newest batch, (0, 0) for none.
    fn log_position(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Keep encoded batches from now on: a replica connected (a store that
    /// always logs, like velocity-lsm's, ignores it).
    fn retain_log(&self) {}

    /// The encoded batches after `seq` up to the newest, oldest first;
    /// `Compacted` when the backlog no longer holds batch `seq + 1`.
    fn raw_batches_since(&self, _seq: u64) -> Result<Vec<bytes::Bytes>, StoreError> {
        Err(StoreError::Unsupported("raw_batches_since"))
    }

    /// Applies a batch received from the primary (it must be the next one) and
    /// logs its bytes as received.
    fn apply_replicated(&self, _raw: bytes::Bytes) -> Result<Commit, StoreError> {
        Err(StoreError::Unsupported("apply_replicated"))
    }

    /// A consistent copy: every record and the log position it reflects.
    fn full_copy(&self) -> Result<FullCopy, StoreError> {
        Err(StoreError::Unsupported("full_copy"))
    }

    /// Replaces the whole content with `records` at log position `position` (a
    /// replica that cannot resume); the backlog restarts after it.
    fn install_copy(&self, _position: (u64, u64), _records: Vec<(Key, Record)>) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("install_copy"))
    }

    /// Whether the content is a partial copy (an interrupted full copy the Python
    /// engine left): the node must take a full copy before it serves reads.
    fn needs_full_copy(&self) -> bool {
        false
    }

    /// Backlog figures for INFO: (bytes held, first seq held, last seq).
    fn backlog_span(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }

    /// Up to `n` (key, expire_at_ms) pairs of keys with a TTL; successive calls
    /// visit every such key before any is visited twice (active expiry).
    fn expiring_sample(&self, n: usize) -> Vec<(Key, i64)>;

    /// Figures for INFO and metrics.
    fn stats(&self) -> StoreStats;

    /// The epoch of the newest batch in the log (0: an empty or volatile log).
    /// Commits never go below it.
    fn last_epoch(&self) -> u64 {
        0
    }

    /// The newest batch known durable (what an fdatasync covered). Stores with
    /// nothing to sync answer `u64::MAX`: every commit is as durable as it gets.
    fn durable_seq(&self) -> u64 {
        u64::MAX
    }

    /// Completes once batch `seq` is durable (a read of a key whose write is not
    /// yet durable waits for this before its reply goes out; keyspace.rs).
    fn wait_durable(&self, _seq: u64) -> DurabilityWait {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Switches the log's sync policy (`always`, `everysec`, `no`; live reload).
    /// Commits made before keep the rule they were made under.
    fn set_appendfsync(&self, _policy: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// The storage engine's own figures (LSM stores only; /metrics, INFO).
    fn engine_stats(&self) -> Option<velocity_lsm::Stats> {
        None
    }

    /// Every live record at one instant, owned, for a snapshot file
    /// (SNAPSHOT_BEGIN, [`crate::snapshot`]). The default copies the records
    /// through `scan_from`'s consistent read (the memory store: under all its
    /// shard locks, as the Python engine copies on its loop).
    fn snapshot_entries(&self) -> Result<crate::snapshot::SnapshotEntries, StoreError> {
        let all = self.scan_from(&[], usize::MAX)?;
        Ok(Box::new(all.into_iter().map(|(k, r)| {
            Ok((
                bytes::Bytes::copy_from_slice(&k),
                velocity_lsm::Record {
                    kind: r.kind,
                    value: bytes::Bytes::copy_from_slice(&r.value),
                    expire_at_ms: r.expire_at_ms,
                },
            ))
        })))
    }

    /// Makes pending writes durable and releases resources.
    fn close(&self) -> Result<(), StoreError>;
}

/// The hash that spreads keys over the memory store's shards and the keyspace's
/// stripe locks (different bits of it). Not keyed: a hostile key set only makes
/// one shard busier, it cannot degrade a shard's ordered map.
pub fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    // fmix64 (MurmurHash3's finaliser): every input bit reaches the top bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
