//! Counters for /metrics and INFO, cheap on the hot path.
//!
//! Each worker thread owns one [`WorkerStats`] and is its only writer: a bump is
//! a relaxed load and store (no locked instruction, no shared cache line with
//! another worker). Readers ([`Totals::collect`]) sum the workers at scrape time
//! and may see a count one request old, which a scrape does not mind.
//!
//! Two latency histograms per opcode, both of service time (from the frame
//! decoded to the reply encoded):
//! - the Prometheus buckets of metrics.py (`LATENCY_BUCKETS`, seconds), exported
//!   as `velocity_request_duration_seconds` so the dashboards keep working;
//! - a fine one, four buckets per power of two of nanoseconds, for the
//!   sub-microsecond figures INFO reports (`service_time_ns`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (inclusive, nanoseconds) of metrics.py's LATENCY_BUCKETS; the last bucket is +Inf.
pub const BUCKET_BOUNDS_NS: [u64; 15] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];
pub const NB: usize = BUCKET_BOUNDS_NS.len() + 1;
/// Fine buckets: 4 per power of two up to 2^40 ns.
pub const FINE: usize = 4 * 41;
/// Opcodes with a fine histogram: 0x00..0x3F (the data and admin opcodes).
pub const FINE_OPS: usize = 0x40;

#[derive(Default)]
struct Cell(AtomicU64);

impl Cell {
    #[inline]
    fn add(&self, n: u64) {
        // Single writer: load + store, no read-modify-write instruction.
        self.0
            .store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn cells(n: usize) -> Box<[Cell]> {
    (0..n).map(|_| Cell::default()).collect()
}

/// One worker's counters (written by that worker only).
pub struct WorkerStats {
    requests: Box<[Cell]>,
    buckets: Box<[Cell]>,
    latency_sum_ns: Box<[Cell]>,
    fine: Box<[Cell]>,
    errors: Box<[Cell]>,
    bytes_in: Cell,
    bytes_out: Cell,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            requests: cells(256),
            buckets: cells(256 * NB),
            latency_sum_ns: cells(256),
            fine: cells(FINE_OPS * FINE),
            errors: cells(256),
            bytes_in: Cell::default(),
            bytes_out: Cell::default(),
        }
    }
}

/// The Prometheus bucket of a service time: bisect_left over the bounds.
#[inline]
pub fn bucket_of(ns: u64) -> usize {
    BUCKET_BOUNDS_NS.partition_point(|&b| b < ns)
}

/// The fine bucket of a service time.
#[inline]
pub fn fine_of(ns: u64) -> usize {
    if ns < 4 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros() as usize; // >= 2
    let sub = ((ns >> (msb - 2)) & 3) as usize;
    (4 * (msb - 1) + sub).min(FINE - 1)
}

/// The upper bound (ns, exclusive) of a fine bucket.
pub fn fine_upper(i: usize) -> u64 {
    if i < 4 {
        return i as u64 + 1;
    }
    let msb = i / 4 + 1;
    let sub = (i % 4) as u64;
    (4 + sub + 1) << (msb - 2)
}

impl WorkerStats {
    /// A request served in `ns` nanoseconds.
    #[inline]
    pub fn observe(&self, opcode: u8, ns: u64) {
        let op = opcode as usize;
        self.requests[op].add(1);
        self.buckets[op * NB + bucket_of(ns)].add(1);
        self.latency_sum_ns[op].add(ns);
        if op < FINE_OPS {
            self.fine[op * FINE + fine_of(ns)].add(1);
        }
    }

    #[inline]
    pub fn error(&self, code: u16) {
        self.errors[(code & 0xFF) as usize].add(1);
    }

    #[inline]
    pub fn bytes_in(&self, n: usize) {
        self.bytes_in.add(n as u64);
    }

    #[inline]
    pub fn bytes_out(&self, n: usize) {
        self.bytes_out.add(n as u64);
    }
}

/// The workers' counters summed.
#[derive(Debug, Clone)]
pub struct Totals {
    pub requests: Vec<u64>,
    /// 256 x NB, per opcode the non-cumulative bucket counts.
    pub buckets: Vec<Vec<u64>>,
    pub latency_sum_ns: Vec<u64>,
    /// FINE_OPS x FINE.
    pub fine: Vec<Vec<u64>>,
    pub errors: Vec<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Totals {
    pub fn collect<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Self {
        let mut t = Totals {
            requests: vec![0; 256],
            buckets: vec![vec![0; NB]; 256],
            latency_sum_ns: vec![0; 256],
            fine: vec![vec![0; FINE]; FINE_OPS],
            errors: vec![0; 256],
            bytes_in: 0,
            bytes_out: 0,
        };
        for w in workers {
            for op in 0..256 {
                t.requests[op] += w.requests[op].get();
                t.latency_sum_ns[op] += w.latency_sum_ns[op].get();
                t.errors[op] += w.errors[op].get();
                for b in 0..NB {
                    t.buckets[op][b] += w.buckets[op * NB + b].get();
                }
            }
            for op in 0..FINE_OPS {
                for b in 0..FINE {
                    t.fine[op][b] += w.fine[op * FINE + b].get();
                }
            }
            t.bytes_in += w.bytes_in.get();
            t.bytes_out += w.bytes_out.get();
        }
        t
    }

    /// metrics.py's latency_quantiles: the bucket bound (in µs) where the quantile falls.
    pub fn bucket_quantile_us(&self, op: usize, frac: f64) -> f64 {
        let total = self.requests[op];
        let target = frac * total as f64;
        let mut seen = 0u64;
        for (i, n) in self.buckets[op].iter().enumerate() {
            seen += n;
            if seen as f64 >= target {
                return BUCKET_BOUNDS_NS.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1000.0);
            }
        }
        f64::INFINITY
    }

    /// The fine histogram's quantile (upper bound of the bucket, ns).
    pub fn fine_quantile_ns(&self, op: usize, frac: f64) -> u64 {
        let Some(h) = self.fine.get(op) else {
            return 0;
        };
        let total: u64 = h.iter().sum();
        if total == 0 {
            return 0;
        }
        let target = (frac * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in h.iter().enumerate() {
            seen += n;
            if seen >= target {
                return fine_upper(i);
            }
        }
        fine_upper(FINE - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_buckets_are_bisect_left() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10_000), 0);
        assert_eq!(bucket_of(10_001), 1);
        assert_eq!(bucket_of(2_000_000_000), NB - 1);
    }

    #[test]
    fn fine_buckets_cover_each_value() {
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 100, 999, 1000, 1_000_000, 123_456_789] {
            let i = fine_of(ns);
            assert!(ns < fine_upper(i), "{ns} in bucket {i} < {}", fine_upper(i));
            if i > 0 {
                assert!(ns >= fine_upper(i - 1), "{ns} above bucket {}", i - 1);
            }
        }
    }

    #[test]
    fn totals_sum_workers() {
        let a = WorkerStats::default();
        let b = WorkerStats::default();
        for _ in 0..99 {
            a.observe(0x10, 700);
        }
        b.observe(0x10, 40_000);
        b.error(8);
        let t = Totals::collect([&a, &b]);
        assert_eq!(t.requests[0x10], 100);
        assert_eq!(t.errors[8], 1);
        assert_eq!(t.bucket_quantile_us(0x10, 0.5), 10.0);
        let p50 = t.fine_quantile_ns(0x10, 0.5);
        assert!((700..=896).contains(&p50), "{p50}");
    }
}
