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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use velocity_proto::ErrorCode;

use crate::error::{VError, VResult};
use crate::store::{key_hash, DurabilityWait, Key, Mutation, Record, Store, StoreError};

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

/// Where a write's durability wait goes: the connection holds its replies until it completes.
pub type Pending = Option<DurabilityWait>;

/// The command layer, shared by every worker thread.
pub struct Keyspace {
    store: Box<dyn Store>,
    stripes: Box<[Mutex<()>]>,
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
    VError::new(ErrorCode::WritesRefused, e.to_string())
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
pub fn encode_int(n: i64) -> Arc<[u8]> {
    Arc::from(&n.to_le_bytes()[..])
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
            store,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            clock,
            expired_total: AtomicU64::new(0),
            hook: OnceLock::new(),
        }
    }

    /// Installs replication's hook (once).
    pub fn set_hook(&self, hook: Arc<dyn CommitHook>) {
        let _ = self.hook.set(hook);
    }

    fn epoch(&self) -> u64 {
        self.hook.get().map_or(0, |h| h.epoch())
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Keys removed because they expired (lazily or by the active cycle).
    pub fn expired_total(&self) -> u64 {
        self.expired_total.load(Ordering::Relaxed)
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn stripe(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        let i = key_hash(key) as usize & (STRIPES - 1);
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stripes_for(&self, keys: &[&[u8]]) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys.iter().map(|k| key_hash(k) as usize & (STRIPES - 1)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| self.stripes[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    fn commit(&self, mutations: Vec<Mutation>, pending: &mut Pending) -> VResult<()> {
        let c = self.store.commit(self.epoch(), mutations).map_err(store_error)?;
        if let Some(w) = c.durable {
            // Commits become durable in order: waiting for the newest covers the rest.
            *pending = Some(w);
        }
        if let Some(h) = self.hook.get() {
            h.committed(c.seq, pending);
        }
        Ok(())
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
                h.committed(c.seq, &mut None);
            }
        }
    }

    /// The live record; the caller holds the key's stripe.
    fn lookup_locked(&self, key: &[u8]) -> Option<Record> {
        let rec = self.store.get(key)?;
        if self.is_expired(&rec) {
            self.expire_locked(key);
            return None;
        }
        Some(rec)
    }

    /// An expired record seen without the stripe: delete it if it is still the one stored.
    fn expire_seen(&self, key: &[u8]) {
        let _g = self.stripe(key);
        if let Some(rec) = self.store.get(key) {
            if self.is_expired(&rec) {
                self.expire_locked(key);
            }
        }
    }

    // -- reads ---------------------------------------------------------------

    /// The live record for `key` (GET): one store read, no stripe, no allocation.
    pub fn lookup(&self, key: &[u8]) -> Option<Record> {
        let rec = self.store.get(key)?;
        if self.is_expired(&rec) {
            self.expire_seen(key);
            return None;
        }
        Some(rec)
    }

    pub fn exists(&self, key: &[u8]) -> bool {
        self.lookup(key).is_some()
    }

    /// Milliseconds left; -1 without expiry; -2 for a missing key.
    pub fn ttl(&self, key: &[u8]) -> i64 {
        match self.lookup(key) {
            None => TTL_MISSING,
            Some(r) if r.expire_at_ms == 0 => TTL_NONE,
            Some(r) => (r.expire_at_ms - self.now()).max(0),
        }
    }

    /// The live records of `keys`, read from one state.
    pub fn mget(&self, keys: &[&[u8]]) -> Vec<Option<Record>> {
        let mut recs = self.store.get_many(keys);
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
        recs
    }

    /// Keys with `prefix` after `cursor` (exclusive), in byte order, and the next
    /// cursor (empty when done). A page ends early, with a cursor, once its keys
    /// would pass `max_bytes`.
    pub fn scan(&self, prefix: &[u8], cursor: &[u8], count: u32, max_bytes: usize) -> VResult<(Vec<Key>, Key)> {
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
            let chunk = self.store.scan_from(&start, want);
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
            let present = self.lookup_locked(key).is_some();
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
            value: Arc::from(value),
            expire_at_ms: at,
        };
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: Some(rec),
            }],
            pending,
        )?;
        Ok(true)
    }

    pub fn delete(&self, key: &[u8], pending: &mut Pending) -> VResult<bool> {
        let _g = self.stripe(key);
        if self.lookup_locked(key).is_none() {
            return Ok(false);
        }
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: None,
            }],
            pending,
        )?;
        Ok(true)
    }

    pub fn incr(&self, key: &[u8], delta: i64, pending: &mut Pending) -> VResult<i64> {
        let _g = self.stripe(key);
        let rec = self.lookup_locked(key);
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
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: Some(Record {
                    kind: KIND_INT,
                    value: encode_int(result),
                    expire_at_ms: expire,
                }),
            }],
            pending,
        )?;
        Ok(result)
    }

    pub fn expire(&self, key: &[u8], ttl_ms: i64, pending: &mut Pending) -> VResult<bool> {
        if ttl_ms <= 0 {
            return Err(VError::invalid(format!("EXPIRE needs ttl_ms > 0, got {ttl_ms}")));
        }
        expire_at(|| 0, ttl_ms)?; // the range check, even when the key does not exist
        let _g = self.stripe(key);
        let Some(rec) = self.lookup_locked(key) else {
            return Ok(false);
        };
        let at = expire_at(|| self.now(), ttl_ms)?;
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: Some(Record {
                    expire_at_ms: at,
                    ..rec
                }),
            }],
            pending,
        )?;
        Ok(true)
    }

    pub fn persist(&self, key: &[u8], pending: &mut Pending) -> VResult<bool> {
        let _g = self.stripe(key);
        let Some(rec) = self.lookup_locked(key) else {
            return Ok(false);
        };
        if rec.expire_at_ms == 0 {
            return Ok(false);
        }
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: Some(Record { expire_at_ms: 0, ..rec }),
            }],
            pending,
        )?;
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
        let rec = self.lookup_locked(key);
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
        self.commit(
            vec![Mutation {
                key: key.into(),
                record: Some(Record {
                    kind,
                    value: Arc::from(value),
                    expire_at_ms: at,
                }),
            }],
            pending,
        )?;
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
                    value: Arc::from(e.value),
                    expire_at_ms: at,
                }),
            });
        }
        let keys: Vec<&[u8]> = entries.iter().map(|e| e.key).collect();
        let _g = self.stripes_for(&keys);
        self.commit(batch, pending)
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
                if let Some(rec) = self.store.get(key) {
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
        assert!(ks.set(k.as_bytes(), 1, v.as_bytes(), 0, 0, &mut None).unwrap());
    }

    #[test]
    fn nx_xx() {
        let (ks, _) = ks();
        let p = &mut None;
        assert!(!ks.set(b"k", 1, b"x", 0, SET_IF_PRESENT, p).unwrap());
        assert!(ks.lookup(b"k").is_none());
        assert!(ks.set(b"k", 1, b"a", 0, SET_IF_ABSENT, p).unwrap());
        assert!(!ks.set(b"k", 1, b"b", 0, SET_IF_ABSENT, p).unwrap());
        assert!(ks.set(b"k", 1, b"c", 0, SET_IF_PRESENT, p).unwrap());
        assert_eq!(&*ks.lookup(b"k").unwrap().value, b"c");
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
        let p = &mut None;
        assert_eq!(ks.incr(b"n", 1, p).unwrap(), 1);
        assert_eq!(ks.incr(b"n", -11, p).unwrap(), -10);
        set(&ks, "s", "12");
        assert_eq!(ks.incr(b"s", 1, p).unwrap(), 13);
        assert_eq!(ks.lookup(b"s").unwrap().kind, KIND_INT);
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
            ks.lookup(b"m").unwrap().kind,
            KIND_STRING,
            "nothing written on overflow"
        );
        assert!(ks.set(b"j", 3, b"{}", 0, 0, p).unwrap());
        assert_eq!(ks.incr(b"j", 1, p).unwrap_err().code, ErrorCode::WrongType);
    }

    #[test]
    fn ttl_lazy_expiry_and_incr_keeps_ttl() {
        let (ks, t) = ks();
        let p = &mut None;
        assert_eq!(ks.ttl(b"k"), TTL_MISSING);
        assert!(ks.set(b"k", 2, &41i64.to_le_bytes(), 100, 0, p).unwrap());
        assert_eq!(ks.ttl(b"k"), 100);
        assert_eq!(ks.incr(b"k", 1, p).unwrap(), 42);
        assert_eq!(ks.ttl(b"k"), 100);
        assert!(ks.persist(b"k", p).unwrap());
        assert!(!ks.persist(b"k", p).unwrap());
        assert_eq!(ks.ttl(b"k"), TTL_NONE);
        assert!(ks.expire(b"k", 10, p).unwrap());
        t.fetch_add(10, Ordering::SeqCst);
        assert!(ks.lookup(b"k").is_none());
        assert_eq!(ks.expired_total(), 1);
        assert_eq!(ks.store().stats().keys, 0, "the expired key was deleted on access");
        assert!(!ks.expire(b"k", 10, p).unwrap());
        assert_eq!(ks.expire(b"k", 0, p).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn active_expiry_removes_untouched_keys() {
        let (ks, t) = ks();
        let p = &mut None;
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
        let p = &mut None;
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
        assert!(ks.lookup(b"a").is_none(), "all or nothing");
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
        let got = ks.mget(&[b"a", b"zz", b"b"]);
        assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
    }

    #[test]
    fn scan_pages_by_prefix_and_size() {
        let (ks, t) = ks();
        let p = &mut None;
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
            let (keys, next) = ks.scan(b"user:", &cursor, 10, usize::MAX).unwrap();
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
        let (keys, next) = ks.scan(b"user:", b"", 10_000, 100).unwrap();
        assert_eq!((keys.len(), next.as_ref()), (2, keys[1].as_ref()));
        assert!(ks.scan(b"user:", b"other", 1, 100).is_err());
        assert!(ks.scan(b"", b"", 10_001, 100).is_err());
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
                        seen.push(ks.incr(b"c", 1, &mut None).unwrap());
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
