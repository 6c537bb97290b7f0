//! CPU cost of one request on the memory path, from a decoded frame to the
//! encoded reply frame (what the service-time histogram measures), without
//! sockets. Ignored by default; run it in release:
//!
//! ```sh
//! cargo test --release -p velocity-core --test hotpath -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::Instant;

use velocity_core::dispatch::Dispatcher;
use velocity_core::memory::MemoryStore;
use velocity_core::server::Shared;
use velocity_core::Settings;
use velocity_proto::{body, fbs};

const N: u64 = 2_000_000;

fn key(prefix: &str, i: u64) -> Vec<u8> {
    format!("{prefix}:{i:012}").into_bytes()
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn service_time_of_set_get_incr() {
    for keys in [1_000, 100_000] {
        measure(keys, false);
    }
    // Once a replica connected, each write is also encoded into the replication log.
    measure(1_000, true);
}

fn measure(keys: u64, replicated: bool) {
    let shared = Arc::new(Shared::new(Settings::default(), Box::new(MemoryStore::new()), 0, 1).unwrap());
    if replicated {
        shared.keyspace.store().retain_log();
    }
    let what = if replicated {
        ", log retained (a replica connected)"
    } else {
        ""
    };
    let mut d = Dispatcher::new(shared);
    let value = vec![b'x'; 64];
    // Requests encoded up front: the loop measures the server side only.
    let sets: Vec<Vec<u8>> = (0..keys)
        .map(|i| {
            body::set_request(
                &key("k", i),
                &value,
                fbs::ValueKind::Bytes,
                0,
                fbs::SetCondition::Always,
            )
        })
        .collect();
    let gets: Vec<Vec<u8>> = (0..keys).map(|i| body::key_request(&key("k", i))).collect();
    let incrs: Vec<Vec<u8>> = (0..keys).map(|i| body::key_request(&key("n", i))).collect();
    let mut out = Vec::with_capacity(1 << 20);
    // A cheap spread over the keys (not sequential: that would flatter the caches).
    let idx = |i: u64| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % keys;
    for (name, op, reqs) in [("SET", 0x11u8, &sets), ("GET", 0x10, &gets), ("INCR", 0x14, &incrs)] {
        let t0 = Instant::now();
        for i in 0..N {
            d.handle(op, 0, &reqs[idx(i) as usize], &mut out).unwrap();
            if out.len() > 1 << 19 {
                out.clear();
            }
        }
        let ns = t0.elapsed().as_nanos() as f64 / N as f64;
        println!("{name}: {ns:.0} ns per request (decode, command, encode, CRC), {keys} keys{what}");
    }
}
