//! A token bucket for background writers (compaction), so foreground latency holds.
//!
//! `throttle(n)` sleeps the calling (background) thread when it has written more
//! than `rate` bytes per second over the last burst window. `cancel()` (any
//! thread) makes the current and every later `throttle` return `Error::Closed`,
//! so a long compaction stops promptly at shutdown.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

struct Bucket {
    tokens: f64,
    stamp: Instant,
    cancelled: bool,
}

/// The limiter.
pub struct RateLimiter {
    rate: Mutex<f64>,
    burst_s: f64,
    bucket: Mutex<Bucket>,
    wake: Condvar,
}

impl RateLimiter {
    /// `rate_bytes_per_s` (0 = unlimited), with a 100 ms burst.
    pub fn new(rate_bytes_per_s: u64) -> RateLimiter {
        let rate = rate_bytes_per_s as f64;
        RateLimiter {
            rate: Mutex::new(rate),
            burst_s: 0.1,
            bucket: Mutex::new(Bucket {
                tokens: rate * 0.1,
                stamp: Instant::now(),
                cancelled: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// Change the rate (live settings).
    pub fn set_rate(&self, rate_bytes_per_s: u64) {
        *self.rate.lock().unwrap_or_else(|p| p.into_inner()) = rate_bytes_per_s as f64;
    }

    /// Account for `n` bytes, sleeping if over the rate.
    pub fn throttle(&self, n: usize) -> Result<()> {
        let rate = *self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        if b.cancelled {
            return Err(Error::Closed);
        }
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.stamp).as_secs_f64() * rate).min(rate * self.burst_s);
        b.stamp = now;
        b.tokens -= n as f64;
        if b.tokens < 0.0 {
            let wait = Duration::from_secs_f64(-b.tokens / rate);
            let deadline = now + wait;
            while !b.cancelled {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                b = self.wake.wait_timeout(b, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            if b.cancelled {
                return Err(Error::Closed);
            }
        }
        Ok(())
    }

    /// Make every throttle fail from now on.
    pub fn cancel(&self) {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).cancelled = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_the_rate_and_cancels() {
        let r = RateLimiter::new(1_000_000);
        let t0 = Instant::now();
        for _ in 0..30 {
            r.throttle(10_000).unwrap();
        }
        // 300 kB at 1 MB/s with a 100 kB burst: at least ~0.2 s.
        assert!(t0.elapsed() >= Duration::from_millis(150), "{:?}", t0.elapsed());
        r.cancel();
        assert!(matches!(r.throttle(1), Err(Error::Closed)));
    }
}
