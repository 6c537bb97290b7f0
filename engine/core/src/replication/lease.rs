//! Lease mode (`--lease-name`): what the core keeps for the Python shell's Lease
//! agent (replication/lease.py, switchover.py, driven through native_lease.py).
//!
//! The agent and the switchover run in Python; the core only needs what the
//! request path checks, without taking the GIL:
//!
//! - the Lease's validity, pushed by the shell after each renewal as a monotonic
//!   deadline: a primary answers linearizable reads and takes writes only before
//!   it (manager.py's `writes_allowed` / `read_valid_until`);
//! - the handover fence of a planned switchover: writes answer REDIRECT with a
//!   retry hint while the target catches up;
//! - the INFO fields only the shell knows (the holder, the last switchover).
//!
//! PROMOTE and REPLICA_OF change meaning under a Lease, so the core does not run
//! them: [`AdminQueue`] parks the request (the connection answers nothing else
//! until its reply, keeping replies in order) and the shell drains the queue
//! with `Core.admin_next` and answers with `Core.admin_reply` / `admin_fail`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::error::{VError, VResult};

use super::lock;

/// The reply to a parked admin request: the response body, or the error.
pub type AdminReply = VResult<Vec<u8>>;

/// A connection's request waiting for the shell: its opcode and where the reply arrives.
pub type Parked = (u8, oneshot::Receiver<AdminReply>);

/// A request handed to the shell: (id, opcode, body).
pub type AdminRequest = (u64, u8, Vec<u8>);

/// Admin requests waiting for the shell, and the replies the connections wait for.
#[derive(Default)]
pub struct AdminQueue {
    queue: Mutex<VecDeque<AdminRequest>>,
    ready: Condvar,
    waiting: Mutex<HashMap<u64, oneshot::Sender<AdminReply>>>,
    next_id: AtomicU64,
}

impl AdminQueue {
    /// Queues a request; the receiver completes when the shell answers (or the
    /// queue is dropped: the receiver then fails).
    pub fn submit(&self, opcode: u8, body: Vec<u8>) -> oneshot::Receiver<AdminReply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id, tx);
        lock(&self.queue).push_back((id, opcode, body));
        self.ready.notify_one();
        rx
    }

    /// The next request, waiting up to `timeout` (None: none came).
    pub fn next(&self, timeout: Duration) -> Option<AdminRequest> {
        let q = lock(&self.queue);
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| q.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        q.pop_front()
    }

    /// Completes request `id`; false if nobody waits for it (answered already,
    /// or its connection went away).
    pub fn reply(&self, id: u64, reply: AdminReply) -> bool {
        match lock(&self.waiting).remove(&id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }
}

/// The Lease state the request path reads (one per node started with `--lease-name`).
pub struct LeaseMode {
    pub name: String,
    base: Instant,
    /// Nanoseconds after `base` until which the Lease is surely this node's (0: never held).
    valid_until_ns: AtomicU64,
    handing_over: AtomicBool,
    handover: Mutex<String>,
    /// INFO fields the shell pushes: `holder`, `switchover`.
    shown: Mutex<Value>,
    pub admin: AdminQueue,
}

impl LeaseMode {
    pub fn new(name: String) -> Self {
        Self {
            name,
            base: Instant::now(),
            valid_until_ns: AtomicU64::new(0),
            handing_over: AtomicBool::new(false),
            handover: Mutex::new(String::new()),
            shown: Mutex::new(json!({"holder": "", "switchover": null})),
            admin: AdminQueue::default(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The shell renewed the Lease: writes and reads are allowed for `remaining` more.
    pub fn renewed(&self, remaining: Duration) {
        let until = self.now_ns().saturating_add(remaining.as_nanos() as u64).max(1);
        self.valid_until_ns.store(until, Ordering::Release);
    }

    /// The Lease is surely still this node's (the primary may read and write).
    pub fn valid(&self) -> bool {
        self.now_ns() < self.valid_until_ns.load(Ordering::Acquire)
    }

    /// Sets (non-empty) or clears the switchover target writes are fenced for.
    pub fn set_handover(&self, target: &str) {
        *lock(&self.handover) = target.to_string();
        self.handing_over.store(!target.is_empty(), Ordering::Release);
    }

    /// The switchover target while writes are fenced for it ("" : none).
    pub fn handover(&self) -> String {
        lock(&self.handover).clone()
    }

    /// The write check of a primary under a Lease (manager.py's `_gate`, same words).
    pub fn check_write(&self) -> VResult<()> {
        if self.handing_over.load(Ordering::Acquire) {
            let target = self.handover();
            return Err(VError::new(
                velocity_proto::ErrorCode::Redirect,
                format!("this primary is handing over to {target}: retry shortly"),
            )
            .retry_after(20));
        }
        if !self.valid() {
            return Err(VError::new(
                velocity_proto::ErrorCode::Redirect,
                "this primary's lease is not renewed: writes stop before it can expire",
            )
            .retry_after(100));
        }
        Ok(())
    }

    /// The read check of a primary under a Lease (manager.py's `_check_primary`).
    pub fn check_read(&self) -> VResult<()> {
        if self.valid() {
            return Ok(());
        }
        Err(VError::new(
            velocity_proto::ErrorCode::Redirect,
            "this primary cannot prove it is still the primary (its Lease is not surely its own): \
             retry, or read with STALE_OK",
        )
        .retry_after(50))
    }

    /// Replaces the INFO fields the shell owns (`holder`, `switchover`).
    pub fn show(&self, fields: Value) {
        *lock(&self.shown) = fields;
    }

    /// INFO's `lease` object (manager.py's shape) and the last switchover.
    pub fn info(&self, primary: bool) -> (Value, Value) {
        let shown = lock(&self.shown).clone();
        let lease = json!({
            "name": self.name,
            "holder": shown.get("holder").cloned().unwrap_or(Value::Null),
            "writes_allowed": primary && self.valid(),
        });
        (lease, shown.get("switchover").cloned().unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_valid_until_its_deadline() {
        let l = LeaseMode::new("x".into());
        assert!(!l.valid(), "never renewed");
        assert!(l.check_write().is_err());
        l.renewed(Duration::from_secs(5));
        assert!(l.valid());
        assert!(l.check_write().is_ok() && l.check_read().is_ok());
        l.renewed(Duration::ZERO);
        assert!(!l.valid());
        assert_eq!(l.check_read().unwrap_err().retry_after_ms, 50);
    }

    #[test]
    fn the_handover_fence_redirects_writes_with_a_retry_hint() {
        let l = LeaseMode::new("x".into());
        l.renewed(Duration::from_secs(5));
        l.set_handover("vdb://b:1");
        let e = l.check_write().unwrap_err();
        assert_eq!((e.code, e.retry_after_ms), (velocity_proto::ErrorCode::Redirect, 20));
        assert!(e.message.contains("vdb://b:1"));
        assert!(l.check_read().is_ok(), "reads go on while the target catches up");
        l.set_handover("");
        assert!(l.check_write().is_ok());
    }

    #[test]
    fn admin_requests_are_answered_by_id() {
        let q = AdminQueue::default();
        assert!(q.next(Duration::from_millis(1)).is_none());
        let mut rx = q.submit(0x45, vec![1, 2]);
        let (id, op, body) = q.next(Duration::from_secs(1)).expect("queued");
        assert_eq!((op, body), (0x45, vec![1, 2]));
        assert!(q.reply(id, Ok(vec![9])));
        assert_eq!(rx.try_recv().expect("answered"), Ok(vec![9]));
        assert!(!q.reply(id, Ok(vec![])), "answered once");
    }
}
