//! How far the log is durable, and who is waiting for it.
//!
//! `synced` only ever moves forward, and only after an fdatasync (or the
//! rotation sync) that covered those batches returned success. A failed sync
//! sets `failed` for good: every waiter, present and future, gets
//! `Error::WritesRefused` and `synced` never moves again (fsyncgate: after a
//! failed fdatasync the kernel may have dropped the dirty pages, so retrying
//! would lie).
//!
//! Waiting: [`DurableFuture`] registers its waker (usable from tokio without
//! blocking a worker); [`Durability::wait_blocking`] waits on a condvar.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

#[derive(Default)]
struct Waiters {
    wakers: Vec<(u64, Waker)>,
    failed: Option<String>,
}

/// The shared durability state of one database.
#[derive(Default)]
pub struct Durability {
    synced: AtomicU64,
    failed_flag: AtomicBool,
    waiters: Mutex<Waiters>,
    cond: Condvar,
}

impl Durability {
    /// Starting at `synced`.
    pub fn new(synced: u64) -> Arc<Durability> {
        Arc::new(Durability {
            synced: AtomicU64::new(synced),
            ..Default::default()
        })
    }

    /// Highest seq known durable on disk.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Whether the log failed for good (a cheap check for the commit path).
    pub fn is_failed(&self) -> bool {
        self.failed_flag.load(Ordering::Acquire)
    }

    /// Set `synced` to `seq` (a full copy replaced the log); waiters re-check.
    pub fn reset_to(&self, seq: u64) {
        let w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        self.synced.store(seq, Ordering::Release);
        let all: Vec<Waker> = w.wakers.iter().map(|(_, wk)| wk.clone()).collect();
        drop(w);
        self.cond.notify_all();
        for wk in all {
            wk.wake();
        }
    }

    /// The failure, if the log failed for good.
    pub fn failure(&self) -> Option<String> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).failed.clone()
    }

    /// Batches up to `seq` are durable: wake their waiters.
    pub fn advance(&self, seq: u64) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if w.failed.is_some() {
            return;
        }
        if self.synced.fetch_max(seq, Ordering::AcqRel) >= seq {
            return;
        }
        let mut ready = Vec::new();
        w.wakers.retain(|(s, wk)| {
            if *s <= seq {
                ready.push(wk.clone());
                false
            } else {
                true
            }
        });
        drop(w);
        self.cond.notify_all();
        for wk in ready {
            wk.wake();
        }
    }

    /// The log failed for good: fail every waiter now and later.
    pub fn fail(&self, why: String) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if w.failed.is_none() {
            w.failed = Some(why);
        }
        self.failed_flag.store(true, Ordering::Release);
        let all: Vec<Waker> = w.wakers.drain(..).map(|(_, wk)| wk).collect();
        drop(w);
        self.cond.notify_all();
        for wk in all {
            wk.wake();
        }
    }

    fn poll_seq(&self, seq: u64, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.synced() >= seq {
            return Poll::Ready(Ok(()));
        }
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced() >= seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(f) = &w.failed {
            return Poll::Ready(Err(Error::WritesRefused(f.clone())));
        }
        if !w.wakers.iter().any(|(s, wk)| *s == seq && wk.will_wake(cx.waker())) {
            w.wakers.push((seq, cx.waker().clone()));
        }
        Poll::Pending
    }

    /// Block the calling thread until `seq` is durable (or the log failed).
    pub fn wait_blocking(&self, seq: u64) -> Result<()> {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.synced() >= seq {
                return Ok(());
            }
            if let Some(f) = &w.failed {
                return Err(Error::WritesRefused(f.clone()));
            }
            w = self.cond.wait(w).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Completes when batch `seq` is durable; fails if the log failed before that.
/// `seq` 0 (nothing to wait for) is ready at once.
pub struct DurableFuture {
    pub(crate) state: Arc<Durability>,
    pub(crate) seq: u64,
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.state.poll_seq(self.seq, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn futures_complete_in_order_and_fail_after_a_failure() {
        let d = Durability::new(0);
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f5 = DurableFuture {
            state: d.clone(),
            seq: 5,
        };
        assert!(Pin::new(&mut f5).poll(&mut cx).is_pending());
        d.advance(4);
        assert!(!flag.0.load(Ordering::SeqCst));
        d.advance(6);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(matches!(Pin::new(&mut f5).poll(&mut cx), Poll::Ready(Ok(()))));
        let mut f9 = DurableFuture {
            state: d.clone(),
            seq: 9,
        };
        assert!(Pin::new(&mut f9).poll(&mut cx).is_pending());
        d.fail("fdatasync failed: EIO".into());
        assert!(matches!(
            Pin::new(&mut f9).poll(&mut cx),
            Poll::Ready(Err(Error::WritesRefused(_)))
        ));
        d.advance(10);
        assert_eq!(d.synced(), 6, "no durability is reported after a failure");
        assert!(d.wait_blocking(3).is_ok());
        assert!(d.wait_blocking(7).is_err());
    }
}
