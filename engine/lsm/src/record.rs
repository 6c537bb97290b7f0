//! The values the engine stores and the mutations a batch carries.

use bytes::Bytes;

/// A stored value. `expire_at_ms` is an absolute Unix time in milliseconds, 0 = no expiry.
///
/// `kind` is the V-Proto value kind (0 Bytes, 1 String, 2 Int, 3 Json); the engine
/// stores it and never interprets it. Expiry *policy* stays with the caller: the
/// engine returns expired records too (only compaction may drop them, as
/// `docs/storage.md` says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// V-Proto value kind.
    pub kind: u8,
    /// The value bytes (shared, cheap to clone: often a slice of the batch that wrote it).
    pub value: Bytes,
    /// Absolute expiry in Unix milliseconds; 0 = never.
    pub expire_at_ms: i64,
}

impl Record {
    /// A record without expiry.
    pub fn new(kind: u8, value: impl Into<Bytes>) -> Record {
        Record {
            kind,
            value: value.into(),
            expire_at_ms: 0,
        }
    }

    /// Whether the record has expired at `now_ms`.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }
}

/// One change inside a batch. A batch is applied atomically, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Store `record` under `key`.
    Put {
        /// The key.
        key: Bytes,
        /// The record.
        record: Record,
    },
    /// Remove `key` (stored as a tombstone until compaction drops it).
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl Mutation {
    /// A put.
    pub fn put(key: impl Into<Bytes>, record: Record) -> Mutation {
        Mutation::Put {
            key: key.into(),
            record,
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Bytes>) -> Mutation {
        Mutation::Delete { key: key.into() }
    }

    /// The key this mutation changes.
    pub fn key(&self) -> &Bytes {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// What a put stores, borrowed (see [`MutationRef`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutRef<'a> {
    /// The value kind.
    pub kind: u8,
    /// The value's bytes.
    pub value: &'a [u8],
    /// Absolute expiry (Unix ms), 0 = none.
    pub expire_at_ms: i64,
}

impl<'a> From<&'a Record> for PutRef<'a> {
    fn from(r: &'a Record) -> Self {
        PutRef {
            kind: r.kind,
            value: &r.value,
            expire_at_ms: r.expire_at_ms,
        }
    }
}

/// A [`Mutation`] whose key and value the caller keeps: `Db::commit_refs` encodes
/// them straight into the batch, so a caller holding its bytes in another type
/// copies them once (into the log record) instead of twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MutationRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The record to store; `None` removes the key.
    pub put: Option<PutRef<'a>>,
}

impl Mutation {
    /// This mutation, borrowed.
    pub fn as_ref(&self) -> MutationRef<'_> {
        match self {
            Mutation::Put { key, record } => MutationRef {
                key,
                put: Some(record.into()),
            },
            Mutation::Delete { key } => MutationRef { key, put: None },
        }
    }
}
