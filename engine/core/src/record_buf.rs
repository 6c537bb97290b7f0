//! One allocation per record: a small header, the key and the value, behind a
//! thin (8-byte) reference-counted pointer.
//!
//! The memory store ([`crate::memory`]) holds each record as one [`RecordBuf`];
//! its hash table and its ordered indexes hold copies of that one pointer. A
//! read hands out a [`Value`], a `RecordBuf` seen as its value bytes: a
//! reference count increment, no copy and no allocation (what `Arc<[u8]>` gave
//! before, without the second allocation and the 16-byte fat pointers).
//!
//! Layout (native byte order, the block 8-aligned):
//!
//! ```text
//! offset 0   refs: u32        reference count (atomic)
//!        4   kind: u8         the value kind (protocol.md "Keys and values")
//!        5   flags: u8        LONG (lengths below), EXPIRY (an expiry follows)
//!        6   key_len: u8      short form: both lengths < 256
//!        7   value_len: u8
//!        8   key_len: u64     LONG only: the lengths at full width,
//!       16   value_len: u64   and bytes 6-7 unused
//!  8 or 24   expire_at_ms: i64    EXPIRY only (Unix ms; absent means 0, never)
//!            key bytes, then value bytes
//! ```
//!
//! A 16-byte key with a 64-byte value and no expiry takes 8 + 16 + 64 = 88
//! bytes (a 96-byte glibc chunk), where `Arc<[u8]>` key and value took 48 + 96.
//!
//! Contract: a `RecordBuf` is immutable while more than its owner's handles
//! exist (only its count changes), so it is `Send + Sync` like `Arc<[u8]>`.
//! The one exception, [`RecordBuf::overwrite_in_place`], writes a new value of
//! the same size into a block nobody else holds (as `Arc::get_mut` would): the
//! memory store overwrites a key without searching its ordered indexes for the
//! pointer to swap.
//!
//! `unsafe` is confined to this module; each block says which invariant it
//! relies on. Miri is not installed on the build machine (offline), so the
//! tests below were not run under it; the reasoning Miri would check is
//! spelled out at each `unsafe` (provenance: every pointer is derived from the
//! one `alloc` returns and stays within its layout; no `&mut` to the block is
//! ever made after construction; the count follows `std::sync::Arc`).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// The fixed part of every block (the short form's lengths included).
#[repr(C)]
struct Header {
    refs: AtomicU32,
    kind: u8,
    flags: u8,
    key_len: u8,
    value_len: u8,
}

const HEADER: usize = std::mem::size_of::<Header>();
const LONG_LENS: usize = 16;
const EXPIRY: usize = 8;
const ALIGN: usize = 8;
const FLAG_LONG: u8 = 1;
const FLAG_EXPIRY: u8 = 2;
/// As `std::sync::Arc`: abort before the count can wrap (it would take 2^31
/// live handles, far past any memory; the margin covers racing increments).
const MAX_REFS: u32 = i32::MAX as u32;

const _: () = assert!(HEADER == 8 && std::mem::align_of::<Header>() <= ALIGN);

/// Where the parts of a block sit.
#[derive(Clone, Copy)]
struct Shape {
    /// The lengths sit after the header at full width (either is over 255).
    long: bool,
    key_len: usize,
    value_len: usize,
    /// Offset of the expiry, if the block has one.
    expiry_at: Option<usize>,
    /// Offset of the key (the value follows it).
    body: usize,
}

impl Shape {
    fn new(key_len: usize, value_len: usize, has_expiry: bool) -> Self {
        let long = key_len > u8::MAX as usize || value_len > u8::MAX as usize;
        let lens_end = if long { HEADER + LONG_LENS } else { HEADER };
        let (expiry_at, body) = match has_expiry {
            true => (Some(lens_end), lens_end + EXPIRY),
            false => (None, lens_end),
        };
        Shape {
            long,
            key_len,
            value_len,
            expiry_at,
            body,
        }
    }

    fn layout(&self) -> Layout {
        let size = self
            .body
            .checked_add(self.key_len)
            .and_then(|n| n.checked_add(self.value_len))
            .expect("record size overflows usize");
        Layout::from_size_align(size, ALIGN).expect("record larger than isize::MAX")
    }
}

/// A record in one allocation (see the module documentation). Cloning it
/// increments a count; the block is freed with the last handle.
pub struct RecordBuf {
    ptr: NonNull<Header>,
    /// Owns a `Header` (and what follows it) for the drop check.
    _owns: PhantomData<Header>,
}

// SAFETY: the block is never written after `new` returns except through the
// atomic count, or by `overwrite_in_place` when no other party holds a handle;
// its bytes are plain data: sharing handles between threads is as safe as
// sharing `Arc<[u8]>`.
unsafe impl Send for RecordBuf {}
// SAFETY: as above; `&RecordBuf` only reads immutable bytes and the atomic count.
unsafe impl Sync for RecordBuf {}

impl RecordBuf {
    /// Builds the block: one allocation, the key and the value copied in.
    /// `expire_at_ms` 0 (never) takes no room.
    pub fn new(key: &[u8], kind: u8, value: &[u8], expire_at_ms: i64) -> Self {
        let shape = Shape::new(key.len(), value.len(), expire_at_ms != 0);
        let layout = shape.layout();
        // SAFETY: the layout's size is at least HEADER (8), never zero.
        let base = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(base.cast::<Header>()) else {
            handle_alloc_error(layout)
        };
        let long = shape.long;
        let flags = (if long { FLAG_LONG } else { 0 }) | (if shape.expiry_at.is_some() { FLAG_EXPIRY } else { 0 });
        // SAFETY: every write below lands inside the fresh block of
        // `layout.size()` bytes (offsets from `Shape`, which computed that size),
        // at offsets aligned for their type (the block is 8-aligned, the header
        // is 8 bytes, the lengths and the expiry sit at multiples of 8). The
        // sources (`key`, `value`) cannot overlap a block just allocated.
        unsafe {
            ptr.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                kind,
                flags,
                key_len: if long { 0 } else { key.len() as u8 },
                value_len: if long { 0 } else { value.len() as u8 },
            });
            if long {
                base.add(HEADER).cast::<u64>().write(key.len() as u64);
                base.add(HEADER + 8).cast::<u64>().write(value.len() as u64);
            }
            if let Some(at) = shape.expiry_at {
                base.add(at).cast::<i64>().write(expire_at_ms);
            }
            let body = base.add(shape.body);
            std::ptr::copy_nonoverlapping(key.as_ptr(), body, key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), body.add(key.len()), value.len());
        }
        RecordBuf {
            ptr,
            _owns: PhantomData,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: `ptr` points to a live block (this handle holds a count) whose
        // first bytes are an initialised `Header`; nothing takes `&mut` to it.
        unsafe { self.ptr.as_ref() }
    }

    fn base(&self) -> *const u8 {
        self.ptr.as_ptr().cast::<u8>().cast_const()
    }

    fn shape(&self) -> Shape {
        let h = self.header();
        let (key_len, value_len) = if h.flags & FLAG_LONG != 0 {
            // SAFETY: a LONG block holds two initialised u64 at offsets 8 and 16,
            // inside its layout and 8-aligned.
            unsafe {
                (
                    self.base().add(HEADER).cast::<u64>().read() as usize,
                    self.base().add(HEADER + 8).cast::<u64>().read() as usize,
                )
            }
        } else {
            (h.key_len as usize, h.value_len as usize)
        };
        Shape::new(key_len, value_len, h.flags & FLAG_EXPIRY != 0)
    }

    /// The value kind.
    pub fn kind(&self) -> u8 {
        self.header().kind
    }

    /// Absolute expiry, Unix ms; 0 when the record has none.
    pub fn expire_at_ms(&self) -> i64 {
        match self.shape().expiry_at {
            // SAFETY: an EXPIRY block holds an initialised i64 at this offset,
            // inside its layout and 8-aligned.
            Some(at) => unsafe { self.base().add(at).cast::<i64>().read() },
            None => 0,
        }
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        let s = self.shape();
        // SAFETY: `key_len` initialised bytes start at `body`, inside the
        // layout; they are never written again, and the slice borrows `self`,
        // which keeps the block alive.
        unsafe { std::slice::from_raw_parts(self.base().add(s.body), s.key_len) }
    }

    /// The value's bytes.
    pub fn value(&self) -> &[u8] {
        let s = self.shape();
        // SAFETY: as for `key`, `value_len` bytes right after the key.
        unsafe { std::slice::from_raw_parts(self.base().add(s.body + s.key_len), s.value_len) }
    }

    /// Replaces kind, value and expiry in place, if the new value has the same
    /// length, the expiry is set or unset as before, and the count shows no
    /// handle beyond the `held` ones. Returns whether it did (otherwise nothing
    /// changed and the caller builds a new record).
    ///
    /// # Safety
    ///
    /// The caller owns exactly `held` handles to this block (`self` among them),
    /// and none of them can be used by another thread until this returns (the
    /// memory store: all are in a shard whose lock it holds). Then a count equal
    /// to `held` proves that no reader holds a handle or a [`Value`] of the block,
    /// and none can appear during the call (a new handle is only cloned from an
    /// existing one): the writes below race with no read.
    pub unsafe fn overwrite_in_place(&self, held: u32, kind: u8, value: &[u8], expire_at_ms: i64) -> bool {
        let s = self.shape();
        // Acquire, as `Arc::get_mut`: the reads of readers that dropped their
        // handles (Release) happen before the writes below.
        if s.value_len != value.len()
            || s.expiry_at.is_some() != (expire_at_ms != 0)
            || self.header().refs.load(Ordering::Acquire) != held
        {
            return false;
        }
        let base = self.ptr.as_ptr().cast::<u8>();
        // SAFETY: by the caller's contract and the count, nothing reads the block
        // concurrently and no reference into it is alive (the handles' `&[u8]`
        // and `&Header` borrows ended: the caller holds them all and is here).
        // Every write stays inside the layout: the same shape as before, so the
        // expiry slot exists iff it is written and the value fits exactly; `value`
        // cannot overlap the block (a `Value` of it would have raised the count).
        unsafe {
            std::ptr::addr_of_mut!((*self.ptr.as_ptr()).kind).write(kind);
            if let Some(at) = s.expiry_at {
                base.add(at).cast::<i64>().write(expire_at_ms);
            }
            std::ptr::copy_nonoverlapping(value.as_ptr(), base.add(s.body + s.key_len), value.len());
        }
        true
    }

    /// Bytes of key and value (the store's `data_bytes`).
    pub fn data_len(&self) -> usize {
        let s = self.shape();
        s.key_len + s.value_len
    }
}

impl Clone for RecordBuf {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc::clone`: a new handle comes from an existing one, which
        // already keeps the block alive; no other memory is published by it.
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFS {
            std::process::abort();
        }
        RecordBuf {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl Drop for RecordBuf {
    fn drop(&mut self) {
        // Release, then Acquire before freeing, as `Arc::drop`: every use of the
        // block by other handles happens before the free.
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let layout = self.shape().layout();
        // SAFETY: this was the last handle (the count reached 0), so nothing
        // else can reach the block; it was allocated by `alloc` with this very
        // layout (`shape()` reads back the lengths and flags `new` wrote).
        unsafe { dealloc(self.ptr.as_ptr().cast::<u8>(), layout) }
    }
}

impl fmt::Debug for RecordBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBuf")
            .field("key", &self.key())
            .field("kind", &self.kind())
            .field("value", &self.value())
            .field("expire_at_ms", &self.expire_at_ms())
            .finish()
    }
}

/// A record's value bytes, reference counted: what [`crate::store::Record`]
/// carries. Either a view of a stored record (a memory-store read: no copy) or
/// a block of its own (a value from a request, a log, a file).
#[derive(Clone)]
pub struct Value(RecordBuf);

impl Value {
    /// The value of a stored record, shared.
    pub fn of(rec: RecordBuf) -> Self {
        Value(rec)
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.value()
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

impl Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self.0.value()
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value(RecordBuf::new(&[], 0, v, 0))
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::from(&v[..])
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.0.value() == other.0.value()
    }
}

impl Eq for Value {}

impl fmt::Debug for Value {
    /// As `Arc<[u8]>` printed it: the bytes as a list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.value(), f)
    }
}

/// A record ordered by its key bytes alone, for the ordered indexes (SCAN
/// order, the TTL set): it borrows as `[u8]`, so they are searched by key.
#[derive(Clone, Debug)]
pub struct ByKey(pub RecordBuf);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.key().cmp(other.0.key())
    }
}

impl Borrow<[u8]> for ByKey {
    fn borrow(&self) -> &[u8] {
        self.0.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn refs(r: &RecordBuf) -> u32 {
        r.header().refs.load(Ordering::Relaxed)
    }

    #[test]
    fn fields_read_back_in_every_form() {
        let long_v = vec![7u8; 256];
        let long_k = vec![b'k'; 300];
        for (key, value) in [
            (&b""[..], &b""[..]),
            (b"key:000000000001", &[0xAB; 64][..]),
            (&[1u8; 255][..], &[2u8; 255][..]),
            (b"k", &long_v[..]),
            (&long_k[..], b"v"),
        ] {
            for at in [0, 1, -5, i64::MAX] {
                let r = RecordBuf::new(key, 3, value, at);
                assert_eq!((r.key(), r.value(), r.kind(), r.expire_at_ms()), (key, value, 3, at));
                assert_eq!(r.data_len(), key.len() + value.len());
                let s = r.shape();
                assert_eq!(s.long, key.len() > 255 || value.len() > 255);
                assert_eq!(s.expiry_at.is_some(), at != 0);
            }
        }
    }

    #[test]
    fn a_small_record_is_one_96_byte_chunk() {
        let r = RecordBuf::new(b"key:000000000001", 1, &[0; 64], 0);
        assert_eq!(r.shape().layout().size(), 88);
        assert_eq!(std::mem::size_of::<RecordBuf>(), 8);
        assert_eq!(std::mem::size_of::<Option<RecordBuf>>(), 8);
        let r = RecordBuf::new(b"key:000000000001", 1, &[0; 64], 5);
        assert_eq!(r.shape().layout().size(), 96, "the expiry adds 8 bytes");
    }

    #[test]
    fn clones_share_the_block_and_the_last_drop_frees_it() {
        let r = RecordBuf::new(b"k", 1, b"v", 0);
        let v = Value::of(r.clone());
        let w = v.clone();
        assert_eq!(refs(&r), 3);
        assert_eq!(v.as_ptr(), r.value().as_ptr(), "a view, not a copy");
        drop(r);
        drop(v);
        assert_eq!(refs(&w.0), 1);
        assert_eq!(&*w, b"v");
    }

    #[test]
    fn handles_cross_threads() {
        let r = RecordBuf::new(b"key", 2, &[9; 100], 42);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let v = Value::of(r.clone());
                        assert_eq!(v.len(), 100);
                    }
                    r.expire_at_ms()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 42);
        }
        assert_eq!(refs(&r), 1);
    }

    #[test]
    fn an_overwrite_in_place_needs_the_same_shape_and_no_other_holder() {
        let r = RecordBuf::new(b"key", 1, b"abc", 5);
        let stored = r.clone();
        // SAFETY (all calls): this test owns every handle, on this thread.
        assert!(unsafe { r.overwrite_in_place(2, 2, b"xyz", 9) });
        assert_eq!(
            (stored.kind(), stored.value(), stored.expire_at_ms()),
            (2, &b"xyz"[..], 9)
        );
        assert_eq!(stored.key(), b"key");
        assert!(!unsafe { r.overwrite_in_place(2, 1, b"xy", 9) }, "a shorter value");
        assert!(!unsafe { r.overwrite_in_place(2, 1, b"xyz", 0) }, "the expiry would go");
        let reader = Value::of(r.clone());
        assert!(
            !unsafe { r.overwrite_in_place(2, 1, b"new", 9) },
            "a reader holds a view"
        );
        assert_eq!(&*reader, b"xyz");
        drop(reader);
        let plain = RecordBuf::new(b"k", 1, b"v", 0);
        assert!(
            !unsafe { plain.overwrite_in_place(1, 1, b"w", 3) },
            "an expiry would come"
        );
        assert!(unsafe { plain.overwrite_in_place(1, 3, b"w", 0) });
        assert_eq!((plain.kind(), plain.value(), plain.expire_at_ms()), (3, &b"w"[..], 0));
    }

    #[test]
    fn values_compare_and_print_as_bytes() {
        let a = Value::from(&b"abc"[..]);
        let b = Value::of(RecordBuf::new(b"some key", 1, b"abc", 7));
        assert_eq!(a, b, "the key, kind and expiry of the block are not the value");
        assert_ne!(a, Value::from(b"abd"));
        assert_eq!(
            format!("{a:?}"),
            format!("{:?}", std::sync::Arc::<[u8]>::from(&b"abc"[..]))
        );
    }

    #[test]
    fn by_key_orders_and_finds_by_key_bytes() {
        let set: BTreeSet<ByKey> = ["b", "a", "c", "ab"]
            .iter()
            .map(|k| ByKey(RecordBuf::new(k.as_bytes(), 1, b"", 0)))
            .collect();
        let keys: Vec<&[u8]> = set.iter().map(|r| r.0.key()).collect();
        assert_eq!(keys, [&b"a"[..], b"ab", b"b", b"c"]);
        assert!(set.contains(&b"ab"[..]));
        let from: Vec<&[u8]> = set
            .range::<[u8], _>((std::ops::Bound::Excluded(&b"ab"[..]), std::ops::Bound::Unbounded))
            .map(|r| r.0.key())
            .collect();
        assert_eq!(from, [&b"b"[..], b"c"]);
    }
}
