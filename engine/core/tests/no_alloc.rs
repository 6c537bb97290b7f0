//! A GET allocates nothing: the body is read in place, the value is shared by
//! reference count, and the reply frame is written into the connection's
//! output buffer. Counted with a global allocator that tallies every allocation
//! of this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use velocity_core::dispatch::Dispatcher;
use velocity_core::memory::MemoryStore;
use velocity_core::server::Shared;
use velocity_core::Settings;
use velocity_proto::{body, fbs};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through to System.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn get_allocates_nothing() {
    let shared = Arc::new(Shared::new(Settings::default(), Box::new(MemoryStore::new()), 0, 1).unwrap());
    let mut d = Dispatcher::new(shared);
    let mut out = Vec::with_capacity(1 << 16);
    let keys: Vec<Vec<u8>> = (0..1000).map(|i| format!("key:{i}").into_bytes()).collect();
    for k in &keys {
        let b = body::set_request(k, &[7u8; 64], fbs::ValueKind::Bytes, 0, fbs::SetCondition::Always);
        d.handle(0x11, 0, &b, &mut out).unwrap();
        out.clear();
    }
    let gets: Vec<Vec<u8>> = keys.iter().map(|k| body::key_request(k)).collect();
    let missing = body::key_request(b"missing");
    for g in &gets {
        d.handle(0x10, 0, g, &mut out).unwrap(); // warm-up: constants, lazily built tables
        out.clear();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..10 {
        for g in &gets {
            d.handle(0x10, 0, g, &mut out).unwrap();
            out.clear();
        }
        d.handle(0x10, 0, &missing, &mut out).unwrap();
        out.clear();
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations during 10,010 GETs");
}
