//! Command semantics on top of a [`Store`]: TTLs, NX/XX, INCR, CAS, MGET/MSET, SCAN.
//!
//! The same rules, in the same order, as engine/velocity_engine/keyspace.py
//! (protocol.md "Command semantics"); argument limits (empty or oversize keys and
//! values, Int length) are the dispatcher's.
//!
//! Linearizability with many threads: every operation that writes takes the
//! stripe lock of each key it touches (1024 stripes by key hash, taken in index
//! order) for its whole read-modify-write, so two writers of one key never
//! interleave; the store makes each commit atomic for readers. A plain read
//! takes no stripe lock: it reads one committed state. Expiry is lazy (an expired
//! record is deleted by whoever touches it, under its stripe) plus the active
//! cycle ([`Keyspace::expire_some`]).
//!
//! Durability of reads (the Python engine's `unsettled` rule, keyspace.py): a
//! reply that shows a write must not go out before that write is durable, or a
//! crash could take back what a client was shown. Writes whose commit must wait
//! for an fdatasync (`appendfsync always`) record their sequence number in their
//! stripe's `stripe_seq`; a read of a key whose stripe holds a sequence above the
//! store's durable one makes its reply wait for it too ([`Pending`]). Per stripe,
//! not per key: a read may wait for a neighbour's write (one group commit at
//! most), never less than it must. Under `everysec`/`no` nothing is recorded
//! (their commits are acknowledged at once), so reads never wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use velocity_proto::ErrorCode;

use crate::error::{VError, VResult};
use crate::store::{key_hash, DurabilityWait, Key, Mutation, Record, Store, StoreError, Value};

pub const SET_ALWAYS: u8 = 0;
pub const SET_IF_ABSENT: u8 = 1;
pub const SET_IF_PRESENT: u8 = 2;
pub const TTL_MISSING: i64 = -2;
pub const TTL_NONE: i64 = -1;
pub const SCAN_DEFAULT_COUNT: u32 = 100;
pub const SCAN_MAX_COUNT: u32 = 10_000;
/// Bytes a key costs in a ScanResponse beyond its length.
pub const SCAN_KEY_OVERHEAD: usize = 32;
/// The longest TTL accepted from the wire (2^53 - 1 ms): an absolute expiry always fits.
pub const MAX_TTL_MS: i64 = (1 << 53) - 1;

pub const KIND_BYTES: u8 = 0;
pub const KIND_STRING: u8 = 1;
pub const KIND_INT: u8 = 2;
pub const KIND_JSON: u8 = 3;

const STRIPES: usize = 1024;

/// Wall-clock milliseconds (Unix time): the clock expiry is measured against.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The durability the replies queued since the connection's last flush depend
/// on: the newest batch they wrote or showed, and a wait for it. The connection
/// holds those replies until the wait completes. Batches become durable in
/// sequence order, so waiting for the newest covers the others.
#[derive(Default)]
pub struct Pending {
    seq: u64,
    wait: Option<DurabilityWait>,
    /// Sync replication: the newest batch the replies wait to see acknowledged.
    ack_seq: u64,
    ack: Option<DurabilityWait>,
}

impl Pending {
    /// Replies now also depend on batch `seq`, durable once `wait` completes.
    pub fn need(&mut self, seq: u64, wait: DurabilityWait) {
        if self.wait.is_none() || seq > self.seq {
            self.seq = seq;
            self.wait = Some(wait);
        }
    }

    /// The wait to complete before the queued replies go out (and forget it).
    pub fn take(&mut self) -> Option<DurabilityWait> {
        self.seq = 0;
        self.ack_seq = 0;
        match (self.wait.take(), self.ack.take()) {
            (Some(d), Some(a)) => Some(Box::pin(async move {
                d.await?;
                a.await
            })),
            (d, a) => d.or(a),
        }
    }

    /// Replies now also wait for replication's acknowledgement of batch `seq`
    /// (sync mode); acknowledgements come in order, so the newest covers the rest.
    pub fn need_ack(&mut self, seq: u64, wait: DurabilityWait) {
        if self.ack.is_none() || seq > self.ack_seq {
            self.ack_seq = seq;
            self.ack = Some(wait);
        }
    }

    /// Whether some reply waits for durability or an acknowledgement.
    pub fn is_waiting(&self) -> bool {
        self.wait.is_some() || self.ack.is_some()
    }

    /// The batch the replies wait for (0: none).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// `stripe_seq` while a writer of the stripe is committing: a reader that sees it
/// takes the stripe lock (waits for the writer) and reads the slot again.
const COMMITTING: u64 = u64::MAX;

/// The command layer, shared by every worker thread.
pub struct Keyspace {
    store: Box<dyn Store>,
    stripes: Box<[Mutex<()>]>,
    /// Per stripe: the newest batch written under it that had to wait for an
    /// fdatasync (0: none), or [`COMMITTING`]. Read-hold rule: module docs.
    stripe_seq: Box<[AtomicU64]>,
    /// False for stores with nothing to sync (memory): no slot is ever set.
    tracks_durability: bool,
    /// The epoch this node's writes are logged in (replication.md; never below the
    /// log's newest batch, which velocity-lsm refuses).
    epoch: AtomicU64,
    clock: Clock,
    expired_total: AtomicU64,
    /// Replication's hook into the write path (set once at start; none in unit tests).
    hook: OnceLock<Arc<dyn CommitHook>>,
}

/// What replication hooks into the write path (replication/mod.rs).
pub trait CommitHook: Send + Sync {
    /// The epoch new batches are written in.
    fn epoch(&self) -> u64;
    /// False on a replica: its data changes only by its stream (expiry deletions
    /// come from the primary), so lazy and active expiry only hide expired keys.
    fn writable(&self) -> bool;
    /// After a commit: wake the feeds; a sync-mode reply waits for the quorum.
    fn committed(&self, seq: u64, pending: &mut Pending);
}

fn store_error(e: StoreError) -> VError {
    match e {
        StoreError::WritesRefused(_) => VError::new(ErrorCode::WritesRefused, e.to_string()),
        StoreError::Corruption(_) => VError::new(ErrorCode::Internal, e.to_string()),
        StoreError::NotAcknowledged(_) => VError::new(ErrorCode::NotEnoughReplicas, e.to_string()),
        StoreError::Unsupported(_)
        | StoreError::InvalidSetting(_)
        | StoreError::Compacted { .. }
        | StoreError::BadBatch(_) => VError::new(ErrorCode::Internal, e.to_string()),
    }
}

fn stripe_index(key: &[u8]) -> usize {
    key_hash(key) as usize & (STRIPES - 1)
}

fn expire_at(now: impl FnOnce() -> i64, ttl_ms: i64) -> VResult<i64> {
    if ttl_ms < 0 {
        return Err(VError::invalid(format!("ttl_ms must be >= 0, got {ttl_ms}")));
    }
    if ttl_ms > MAX_TTL_MS {
        return Err(VError::invalid(format!(
            "ttl_ms {ttl_ms} exceeds the maximum of {MAX_TTL_MS} (2^53 - 1)"
        )));
    }
    Ok(if ttl_ms != 0 { now() + ttl_ms } else { 0 })
}

/// An Int record's bytes.
pub fn encode_int(n: i64) -> Value {
    Value::from(&n.to_le_bytes())
}

/// The integer INCR starts from (protocol.md: Int as is; a canonical decimal in
/// Bytes or String as in Redis; JSON is WRONG_TYPE; other text NOT_INTEGER).
fn as_int(rec: &Record) -> VResult<i64> {
    let not_integer = || VError::new(ErrorCode::NotInteger, "value is not an integer");
    match rec.kind {
        KIND_INT => {
            let b: [u8; 8] = rec.value.as_ref().try_into().map_err(|_| not_integer())?;
            Ok(i64::from_le_bytes(b))
        }
        KIND_BYTES | KIND_STRING => {
            let text = rec.value.as_ref();
            if text.is_empty() || text.len() > 20 {
                return Err(not_integer());
            }
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            let canonical = !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits.len() == 1)
                && text != b"-0";
            if !canonical {
                return Err(not_integer());
            }
            std::str::from_utf8(text)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(not_integer)
        }
        // JSON, and the unassigned kinds 4-255 (protocol.md "Keys and values").
        kind => Err(VError::new(
            ErrorCode::WrongType,
            if kind == KIND_JSON {
                "INCR needs an integer value, the key holds JSON".to_string()
            } else {
                format!("INCR needs an integer value, the key holds a value of kind {kind}")
            },
        )),
    }
}

/// The outcome of CAS: applied, or the current record (None: the key is absent).
pub enum CasOutcome {
    Applied,
    NotApplied(Option<Record>),
}

/// One MSET entry, already checked by the dispatcher.
pub struct MsetEntry<'a> {
    pub key: &'a [u8],
    pub kind: u8,
    pub value: &'a [u8],
    pub ttl_ms: i64,
}

impl Keyspace {
    pub fn new(store: Box<dyn Store>) -> Self {
        Self::with_clock(store, Arc::new(wall_ms))
    }

    pub fn with_clock(store: Box<dyn Store>, clock: Clock) -> Self {
        Self {
            tracks_durability: store.durable_seq() != u64::MAX,
            epoch: AtomicU64::new(store.last_epoch().max(1)),
            store,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_seq: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            clock,
            expired_total: AtomicU64::new(0),
            hook: OnceLock::new(),
        }
    }

    /// Installs replication's hook (once).
    pub fn set_hook(&self, hook: Arc<dyn CommitHook>) {
        let _ = self.hook.set(hook);
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The epoch writes are logged in.
    /// Replication's epoch once its hook is installed (never below the log's newest).
    pub fn epoch(&self) -> u64 {
        let floor = self.epoch.load(Ordering::Acquire);
        self.hook.get().map_or(floor, |h| h.epoch().max(floor))
    }

    /// Raises the epoch writes are logged in (never lowers it).
    pub fn raise_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Keys removed because they expired (lazily or by the active cycle).
    pub fn expired_total(&self) -> u64 {
        self.expired_total.load(Ordering::Relaxed)
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn stripe(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        self.stripes[stripe_index(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the stripes of `keys` in index order; returns the guards and the indexes.
    fn stripes_for(&self, keys: &[&[u8]]) -> (Vec<MutexGuard<'_, ()>>, Vec<usize>) {
        let mut idx: Vec<usize> = keys.iter().map(|k| stripe_index(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx
            .iter()
            .map(|&i| self.stripes[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        (guards, idx)
    }

    /// Commits a write of one key; the caller holds its stripe.
    fn commit_one(&self, key: &[u8], record: Option<Record>, pending: &mut Pending) -> VResult<()> {
        let m = Mutation {
            key: key.into(),
            record,
        };
        self.commit(&[stripe_index(key)], vec![m], pending)
    }

    /// Commits `mutations`; the caller holds the (deduplicated) `stripes` they touch.
    ///
    /// Each stripe's slot reads [`COMMITTING`] from before the commit can be seen
    /// until its sequence is recorded, so a reader that sees the new value also
    /// sees that it must wait (its load of the slot follows its read of the value).
    fn commit(&self, stripes: &[usize], mutations: Vec<Mutation>, pending: &mut Pending) -> VResult<()> {
        let seq = self.commit_tracked(stripes, mutations, pending)?;
        if let Some(h) = self.hook.get() {
            h.committed(seq, pending);
        }
        Ok(())
    }

    /// [`Self::commit`] without replication's hook: returns the batch's sequence.
    fn commit_tracked(&self, stripes: &[usize], mutations: Vec<Mutation>, pending: &mut Pending) -> VResult<u64> {
        if !self.tracks_durability {
            let c = self.store.commit(self.epoch(), mutations).map_err(store_error)?;
            if let Some(w) = c.durable {
                pending.need(c.seq, w);
            }
            return Ok(c.seq);
        }
        let mut prev = [0u64; 8];
        let many: Vec<u64>;
        let prev: &[u64] = if stripes.len() <= prev.len() {
            for (p, &i) in prev.iter_mut().zip(stripes) {
                *p = self.stripe_seq[i].swap(COMMITTING, Ordering::SeqCst);
            }
            &prev[..stripes.len()]
        } else {
            many = stripes
                .iter()
                .map(|&i| self.stripe_seq[i].swap(COMMITTING, Ordering::SeqCst))
                .collect();
            &many
        };
        let result = self.store.commit(self.epoch(), mutations);
        let (seq, wait) = match result {
            Ok(c) => (c.seq, c.durable),
            Err(e) => {
                for (&i, &p) in stripes.iter().zip(prev) {
                    self.stripe_seq[i].store(p, Ordering::Release);
                }
                return Err(store_error(e));
            }
        };
        for (&i, &p) in stripes.iter().zip(prev) {
            // Only writes that wait for an fdatasync make readers wait.
            let v = if wait.is_some() { seq.max(p) } else { p };
            self.stripe_seq[i].store(v, Ordering::Release);
        }
        if let Some(w) = wait {
            pending.need(seq, w);
        }
        Ok(seq)
    }

    /// A reply that shows `key`'s state waits for the durability of the newest
    /// fsync-bound write of its stripe, if that is not durable yet. Called after
    /// the read.
    fn hold(&self, key: &[u8], pending: &mut Pending) {
        let i = stripe_index(key);
        let mut s = self.stripe_seq[i].load(Ordering::SeqCst);
        if s == 0 {
            return;
        }
        if s == COMMITTING {
            // A writer of this stripe is between its commit and recording it.
            drop(self.stripes[i].lock().unwrap_or_else(|e| e.into_inner()));
            s = self.stripe_seq[i].load(Ordering::SeqCst);
        }
        if s != COMMITTING && s > pending.seq() && s > self.store.durable_seq() {
            pending.need(s, self.store.wait_durable(s));
        }
    }

    fn is_expired(&self, rec: &Record) -> bool {
        rec.expire_at_ms != 0 && rec.expire_at_ms <= self.now()
    }

    /// Deletes an expired key; the caller holds its stripe.
    fn expire_locked(&self, key: &[u8]) {
        let m = Mutation {
            key: key.into(),
            record: None,
        };
        if self.hook.get().is_some_and(|h| !h.writable()) {
            return;
        }
        // Not tracked for durability: an expired key reads as absent either way.
        if let Ok(c) = self.store.commit(self.epoch(), vec![m]) {
            self.expired_total.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = self.hook.get() {
                h.committed(c.seq, &mut Pending::default());
            }
        }
    }

    /// The live record; the caller holds the key's stripe.
    fn lookup_locked(&self, key: &[u8], pending: &mut Pending) -> VResult<Option<Record>> {
        let rec = self.store.get(key).map_err(store_error)?;
        self.hold(key, pending);
        let Some(rec) = rec else { return Ok(None) };
        if self.is_expired(&rec) {
            self.expire_locked(key);
            return Ok(None);
        }
        Ok(Some(rec))
    }

    /// An expired record seen without the stripe: delete it if it is still the one stored.
    fn expire_seen(&self, key: &[u8]) {
        let _g = self.stripe(key);
        if let Ok(Some(rec)) = self.store.get(key) {
            if self.is_expired(&rec) {
                self.expire_locked(key);
            }
        }
    }

    // -- reads ---------------------------------------------------------------

    /// The live record for `key` (GET): one store read, no stripe, no allocation
    /// (with the memory store).
    pub fn lookup(&self, key: &[u8], pending: &mut Pending) -> VResult<Option<Record>> {
        let rec = self.store.get(key).map_err(store_error)?;
        self.hold(key, pending);
        let Some(rec) = rec else { return Ok(None) };
        if self.is_expired(&rec) {
            self.expire_seen(key);
            return Ok(None);
        }
        Ok(Some(rec))
    }

    pub fn exists(&self, key: &[u8], pending: &mut Pending) -> VResult<bool> {
        Ok(self.lookup(key, pending)?.is_some())
    }

    /// Milliseconds left; -1 without expiry; -2 for a missing key.
    pub fn ttl(&self, key: &[u8], pending: &mut Pending) -> VResult<i64> {
        Ok(match self.lookup(key, pending)? {
            None => TTL_MISSING,
            Some(r) if r.expire_at_ms == 0 => TTL_NONE,
            Some(r) => (r.expire_at_ms - self.now()).max(0),
        })
    }

    /// The live records of `keys`, read from one state.
    pub fn mget(&self, keys: &[&[u8]], pending: &mut Pending) -> VResult<Vec<Option<Record>>> {
        let mut recs = self.store.get_many(keys).map_err(store_error)?;
        for k in keys {
            self.hold(k, pending);
        }
        let mut now = None;
        for (k, slot) in keys.iter().zip(recs.iter_mut()) {
            let expired = slot
                .as_ref()
                .is_some_and(|r| r.expire_at_ms != 0 && r.expire_at_ms <= *now.get_or_insert_with(|| self.now()));
            if expired {
                *slot = None;
                self.expire_seen(k);
            }
        }
        Ok(recs)
    }

    /// Keys with `prefix` after `cursor` (exclusive), in byte order, and the next
    /// cursor (empty when done). A page ends early, with a cursor, once its keys
    /// would pass `max_bytes`.
    pub fn scan(
        &self,
        prefix: &[u8],
        cursor: &[u8],
        count: u32,
        max_bytes: usize,
        pending: &mut Pending,
    ) -> VResult<(Vec<Key>, Key)> {
        if !cursor.is_empty() && !cursor.starts_with(prefix) {
            return Err(VError::invalid("cursor does not belong to this prefix"));
        }
        let count = if count == 0 { SCAN_DEFAULT_COUNT } else { count };
        if count > SCAN_MAX_COUNT {
            return Err(VError::invalid(format!("count {count} exceeds {SCAN_MAX_COUNT}")));
        }
        let count = count as usize;
        let now = self.now();
        let mut start: Vec<u8> = if cursor.is_empty() {
            prefix.to_vec()
        } else {
            let mut s = cursor.to_vec();
            s.push(0);
            s
        };
        let mut keys: Vec<Key> = Vec::new();
        let mut expired: Vec<Key> = Vec::new();
        let mut size = 0usize;
        let mut more = false;
        'pages: loop {
            // Live keys still wanted, plus one to learn whether more follow.
            let want = count + 1 - keys.len() + 16;
            let chunk = self.store.scan_from(&start, want).map_err(store_error)?;
            let exhausted = chunk.len() < want;
            let mut last = None;
            for (key, rec) in chunk {
                if !key.starts_with(prefix) {
                    break 'pages;
                }
                if rec.expire_at_ms != 0 && rec.expire_at_ms <= now {
                    last = Some(key.clone());
                    expired.push(key);
                    continue;
                }
                size += key.len() + SCAN_KEY_OVERHEAD;
                if keys.len() == count || (size > max_bytes && !keys.is_empty()) {
                    more = true;
                    break 'pages;
                }
                last = Some(key.clone());
                keys.push(key);
            }
            match last {
                Some(k) if !exhausted => {
                    start = k.to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        for key in &keys {
            self.hold(key, pending);
        }
        for key in &expired {
            self.expire_seen(key);
        }
        let next: Key = match keys.last() {
            Some(k) if more => k.clone(),
            _ => Arc::from(&[][..]),
        };
        Ok((keys, next))
    }

    // -- writes --------------------------------------------------------------

    pub fn set(
        &self,
        key: &[u8],
        kind: u8,
        value: &[u8],
        ttl_ms: i64,
        condition: u8,
        pending: &mut Pending,
    ) -> VResult<bool> {
        let _g = self.stripe(key);
        if condition != SET_ALWAYS {
            let present = self.lookup_locked(key, pending)?.is_some();
            if condition == SET_IF_ABSENT && present || condition == SET_IF_PRESENT && !present {
                return Ok(false);
            }
            if condition != SET_IF_ABSENT && condition != SET_IF_PRESENT {
                return Err(VError::invalid(format!("unknown SET condition {condition}")));
            }
        }
        let at = expire_at(|| self.now(), ttl_ms)?;
        let rec = Record {
            kind,
            value: Value::from(value),
            expire_at_ms: at,
        };
        self.commit_one(key, Some(rec), pending)?;
        Ok(true)
    }

    pub fn delete(&self, key: &[u8], pending: &mut Pending) -> VResult<bool> {
        let _g = self.stripe(key);
        if self.lookup_locked(key, pending)?.is_none() {
            return Ok(false);
        }
        self.commit_one(key, None, pending)?;
        Ok(true)
    }

    pub fn incr(&self, key: &[u8], delta: i64, pending: &mut Pending) -> VResult<i64> {
        let _g = self.stripe(key);
        let rec = self.lookup_locked(key, pending)?;
        let current = match &rec {
            None => 0,
            Some(r) => as_int(r)?,
        };
        let result = current.checked_add(delta).ok_or_else(|| {
            VError::new(
                ErrorCode::Overflow,
                format!("increment would overflow a signed 64-bit integer ({current} + {delta})"),
            )
        })?;
        // INCR keeps the TTL, as in Redis.
        let expire = rec.map_or(0, |r| r.expire_at_ms);
        let rec = Record {
            kind: KIND_INT,
            value: encode_int(result),
            expire_at_ms: expire,
        };
        self.commit_one(key, Some(rec), pending)?;
        Ok(result)
    }

    pub fn expire(&self, key: &[u8], ttl_ms: i64, pending: &mut Pending) -> VResult<bool> {
        if ttl_ms <= 0 {
            return Err(VError::invalid(format!("EXPIRE needs ttl_ms > 0, got {ttl_ms}")));
        }
        expire_at(|| 0, ttl_ms)?; // the range check, even when the key does not exist
        let _g = self.stripe(key);
        let Some(rec) = self.lookup_locked(key, pending)? else {
            return Ok(false);
        };
        let at = expire_at(|| self.now(), ttl_ms)?;
        self.commit_one(
            key,
            Some(Record {
                expire_at_ms: at,
                ..rec
            }),
            pending,
        )?;
        Ok(true)
    }

    pub fn persist(&self, key: &[u8], pending: &mut Pending) -> VResult<bool> {
        let _g = self.stripe(key);
        let Some(rec) = self.lookup_locked(key, pending)? else {
            return Ok(false);
        };
        if rec.expire_at_ms == 0 {
            return Ok(false);
        }
        self.commit_one(key, Some(Record { expire_at_ms: 0, ..rec }), pending)?;
        Ok(true)
    }

    /// Writes only if the current value matches (bytes and kind), or with
    /// `expect_absent` only if the key does not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn cas(
        &self,
        key: &[u8],
        expected: &[u8],
        expected_kind: u8,
        expect_absent: bool,
        value: &[u8],
        kind: u8,
        ttl_ms: i64,
        pending: &mut Pending,
    ) -> VResult<CasOutcome> {
        let _g = self.stripe(key);
        let rec = self.lookup_locked(key, pending)?;
        let ok = if expect_absent {
            rec.is_none()
        } else {
            rec.as_ref()
                .is_some_and(|r| r.value.as_ref() == expected && r.kind == expected_kind)
        };
        if !ok {
            return Ok(CasOutcome::NotApplied(rec));
        }
        let at = expire_at(|| self.now(), ttl_ms)?;
        let rec = Record {
            kind,
            value: Value::from(value),
            expire_at_ms: at,
        };
        self.commit_one(key, Some(rec), pending)?;
        Ok(CasOutcome::Applied)
    }

    /// Atomic: every entry is written, or (an invalid TTL) none is.
    pub fn mset(&self, entries: &[MsetEntry<'_>], pending: &mut Pending) -> VResult<()> {
        let mut now = None;
        let mut batch = Vec::with_capacity(entries.len());
        for e in entries {
            let at = expire_at(|| *now.get_or_insert_with(|| self.now()), e.ttl_ms)?;
            batch.push(Mutation {
                key: e.key.into(),
                record: Some(Record {
                    kind: e.kind,
                    value: Value::from(e.value),
                    expire_at_ms: at,
                }),
            });
        }
        let keys: Vec<&[u8]> = entries.iter().map(|e| e.key).collect();
        let (_g, stripes) = self.stripes_for(&keys);
        self.commit(&stripes, batch, pending)
    }

    // -- expiry --------------------------------------------------------------

    /// One step of the active cycle: (keys checked, keys expired).
    pub fn expire_some(&self, sample: usize) -> (usize, usize) {
        let now = self.now();
        let pairs = self.store.expiring_sample(sample);
        let mut gone = 0;
        for (key, at) in &pairs {
            if *at <= now {
                let _g = self.stripe(key);
                if let Ok(Some(rec)) = self.store.get(key) {
                    if rec.expire_at_ms != 0 && rec.expire_at_ms <= now {
                        self.expire_locked(key);
                        gone += 1;
                    }
                }
            }
        }
        (pairs.len(), gone)
    }
}

/// Keys sampled per active-expiry step, and the share of expired keys in a
/// sample that makes the cycle continue (as Redis and expiry.py do).
pub const EXPIRY_SAMPLE: usize = 20;
const REPEAT_IF_EXPIRED_SHARE: f64 = 0.25;

/// One active-expiry cycle within `budget`; returns the keys expired.
pub fn expiry_cycle(ks: &Keyspace, budget: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + budget;
    let mut total = 0;
    loop {
        let (checked, gone) = ks.expire_some(EXPIRY_SAMPLE);
        total += gone;
        if checked == 0
            || (gone as f64) < checked as f64 * REPEAT_IF_EXPIRED_SHARE
            || std::time::Instant::now() >= deadline
        {
            return total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use std::sync::atomic::AtomicI64;

    fn ks() -> (Keyspace, Arc<AtomicI64>) {
        let t = Arc::new(AtomicI64::new(1_000_000));
        let c = t.clone();
        let ks = Keyspace::with_clock(Box::new(MemoryStore::new()), Arc::new(move || c.load(Ordering::SeqCst)));
        (ks, t)
    }

    fn set(ks: &Keyspace, k: &str, v: &str) {
        assert!(ks
            .set(k.as_bytes(), 1, v.as_bytes(), 0, 0, &mut Pending::default())
            .unwrap());
    }

    #[test]
    fn nx_xx() {
        let (ks, _) = ks();
        let p = &mut Pending::default();
        assert!(!ks.set(b"k", 1, b"x", 0, SET_IF_PRESENT, p).unwrap());
        assert!(ks.lookup(b"k", &mut Pending::default()).unwrap().is_none());
        assert!(ks.set(b"k", 1, b"a", 0, SET_IF_ABSENT, p).unwrap());
        assert!(!ks.set(b"k", 1, b"b", 0, SET_IF_ABSENT, p).unwrap());
        assert!(ks.set(b"k", 1, b"c", 0, SET_IF_PRESENT, p).unwrap());
        assert_eq!(&*ks.lookup(b"k", &mut Pending::default()).unwrap().unwrap().value, b"c");
        let e = ks.set(b"k", 1, b"c", 0, 7, p).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        // The condition is decided before the TTL is checked (keyspace.py's order).
        assert!(!ks.set(b"k", 1, b"c", -1, SET_IF_ABSENT, p).unwrap());
        assert_eq!(
            ks.set(b"k", 1, b"c", -1, 0, p).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let big = ks.set(b"k", 1, b"c", MAX_TTL_MS + 1, 0, p).unwrap_err();
        assert!(big.message.contains("2^53 - 1"));
        assert!(ks.set(b"k", 1, b"c", MAX_TTL_MS, 0, p).unwrap());
    }

    #[test]
    fn incr_rules() {
        let (ks, _) = ks();
        let p = &mut Pending::default();
        assert_eq!(ks.incr(b"n", 1, p).unwrap(), 1);
        assert_eq!(ks.incr(b"n", -11, p).unwrap(), -10);
        set(&ks, "s", "12");
        assert_eq!(ks.incr(b"s", 1, p).unwrap(), 13);
        assert_eq!(
            ks.lookup(b"s", &mut Pending::default()).unwrap().unwrap().kind,
            KIND_INT
        );
        for bad in [
            "+12",
            "012",
            "-0",
            "--5",
            "",
            "1.5",
            "twelve",
            "-",
            "99999999999999999999",
        ] {
            set(&ks, "t", bad);
            assert_eq!(ks.incr(b"t", 1, p).unwrap_err().code, ErrorCode::NotInteger, "{bad:?}");
        }
        set(&ks, "m", "-9223372036854775808");
        assert_eq!(ks.incr(b"m", -1, p).unwrap_err().code, ErrorCode::Overflow);
        assert_eq!(
            ks.lookup(b"m", &mut Pending::default()).unwrap().unwrap().kind,
            KIND_STRING,
            "nothing written on overflow"
        );
        assert!(ks.set(b"j", 3, b"{}", 0, 0, p).unwrap());
        assert_eq!(ks.incr(b"j", 1, p).unwrap_err().code, ErrorCode::WrongType);
    }

    #[test]
    fn ttl_lazy_expiry_and_incr_keeps_ttl() {
        let (ks, t) = ks();
        let p = &mut Pending::default();
        assert_eq!(ks.ttl(b"k", &mut Pending::default()).unwrap(), TTL_MISSING);
        assert!(ks.set(b"k", 2, &41i64.to_le_bytes(), 100, 0, p).unwrap());
        assert_eq!(ks.ttl(b"k", &mut Pending::default()).unwrap(), 100);
        assert_eq!(ks.incr(b"k", 1, p).unwrap(), 42);
        assert_eq!(ks.ttl(b"k", &mut Pending::default()).unwrap(), 100);
        assert!(ks.persist(b"k", p).unwrap());
        assert!(!ks.persist(b"k", p).unwrap());
        assert_eq!(ks.ttl(b"k", &mut Pending::default()).unwrap(), TTL_NONE);
        assert!(ks.expire(b"k", 10, p).unwrap());
        t.fetch_add(10, Ordering::SeqCst);
        assert!(ks.lookup(b"k", &mut Pending::default()).unwrap().is_none());
        assert_eq!(ks.expired_total(), 1);
        assert_eq!(ks.store().stats().keys, 0, "the expired key was deleted on access");
        assert!(!ks.expire(b"k", 10, p).unwrap());
        assert_eq!(ks.expire(b"k", 0, p).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn active_expiry_removes_untouched_keys() {
        let (ks, t) = ks();
        let p = &mut Pending::default();
        for i in 0..200 {
            ks.set(format!("s{i}").as_bytes(), 0, b"v", 300, 0, p).unwrap();
        }
        ks.set(b"long", 0, b"v", 3_600_000, 0, p).unwrap();
        t.fetch_add(301, Ordering::SeqCst);
        let mut gone = 0;
        for _ in 0..50 {
            gone += expiry_cycle(&ks, std::time::Duration::from_millis(5));
        }
        assert_eq!(gone, 200);
        assert_eq!(ks.store().stats().keys, 1);
    }

    #[test]
    fn cas_and_mset() {
        let (ks, _) = ks();
        let p = &mut Pending::default();
        assert!(matches!(
            ks.cas(b"c", b"", 0, true, b"v1", 1, 0, p).unwrap(),
            CasOutcome::Applied
        ));
        assert!(matches!(
            ks.cas(b"c", b"", 0, true, b"v2", 1, 0, p).unwrap(),
            CasOutcome::NotApplied(Some(_))
        ));
        assert!(matches!(
            ks.cas(b"c", b"v1", 0, false, b"v2", 1, 0, p).unwrap(),
            CasOutcome::NotApplied(_)
        ));
        assert!(matches!(
            ks.cas(b"c", b"v1", 1, false, b"v2", 1, 0, p).unwrap(),
            CasOutcome::Applied
        ));
        let bad = [
            MsetEntry {
                key: b"a",
                kind: 0,
                value: b"1",
                ttl_ms: 0,
            },
            MsetEntry {
                key: b"b",
                kind: 0,
                value: b"2",
                ttl_ms: -5,
            },
        ];
        assert!(ks.mset(&bad, p).is_err());
        assert!(
            ks.lookup(b"a", &mut Pending::default()).unwrap().is_none(),
            "all or nothing"
        );
        let good = [
            MsetEntry {
                key: b"a",
                kind: 0,
                value: b"1",
                ttl_ms: 0,
            },
            MsetEntry {
                key: b"b",
                kind: 0,
                value: b"2",
                ttl_ms: 5,
            },
        ];
        ks.mset(&good, p).unwrap();
        let got = ks.mget(&[b"a", b"zz", b"b"], p).unwrap();
        assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
    }

    #[test]
    fn scan_pages_by_prefix_and_size() {
        let (ks, t) = ks();
        let p = &mut Pending::default();
        for i in 0..257 {
            set(&ks, &format!("user:{i:04}"), "v");
        }
        set(&ks, "user", "v");
        set(&ks, "uses", "v");
        ks.set(b"user:0005x", 0, b"v", 1, 0, p).unwrap();
        t.fetch_add(1, Ordering::SeqCst);
        let mut all = Vec::new();
        let mut cursor: Key = Arc::from(&[][..]);
        loop {
            let (keys, next) = ks.scan(b"user:", &cursor, 10, usize::MAX, p).unwrap();
            assert!(keys.len() <= 10);
            all.extend(keys);
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        assert_eq!(all.len(), 257);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ks.store().stats().keys, 259, "the expired key met by SCAN was removed");
        let (keys, next) = ks.scan(b"user:", b"", 10_000, 100, p).unwrap();
        assert_eq!((keys.len(), next.as_ref()), (2, keys[1].as_ref()));
        assert!(ks.scan(b"user:", b"other", 1, 100, p).is_err());
        assert!(ks.scan(b"", b"", 10_001, 100, p).is_err());
    }

    #[test]
    fn concurrent_incr_is_exact() {
        let ks = Arc::new(Keyspace::new(Box::new(MemoryStore::new())));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ks = ks.clone();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    for _ in 0..2000 {
                        seen.push(ks.incr(b"c", 1, &mut Pending::default()).unwrap());
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=8000).collect::<Vec<_>>());
    }
}
