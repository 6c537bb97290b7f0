//! One client connection: framing, probation before HELLO, timers,
//! backpressure, fatal errors (the native counterpart of connection.py).
//!
//! The task reads, then runs every complete frame in the buffer in order,
//! appending each reply to one output buffer, then writes that buffer with one
//! `write_all` before it reads again. That gives, without further bookkeeping:
//! - replies in request order, exactly one per request;
//! - backpressure: while a write has not been taken by the kernel nothing is
//!   read or run, and a pipeline stops being run (and its output is written)
//!   once `write_buffer_high_bytes` of replies are waiting, whatever each
//!   reply's size, so a connection holds at most that plus one reply;
//! - replies owed before a bad frame go out first: the frames before it in the
//!   buffer were already answered when the bad one is met, then its ERROR
//!   frame follows and the connection closes;
//! - durability: before replies are written, the newest durability wait of the
//!   writes they answer completes (a failed wait aborts the connection: an
//!   unacknowledged write is never reported as done).
//!
//! Requests are parsed in place: a frame's body is a slice of the receive
//! buffer, and so are the keys and values decoded from it.
//!
//! Before a successful HELLO (auth on) the connection is on probation: it
//! counts against `max_unauthenticated` (never a client slot), only frames of at
//! most [`PRE_AUTH_MAX_BODY`] bytes are accepted (checked from the header before
//! the body is buffered), nothing is decompressed, and HELLO must arrive within
//! `handshake_timeout`. A wrong token is answered late (the throttle), then the
//! connection closes. A good HELLO takes a client slot, or `BUSY`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use velocity_proto::frame::{self, HEADER_LEN, MAGIC, TRAILER_LEN};
use velocity_proto::ErrorCode;

use crate::dispatch::{push_error, Dispatcher};
use crate::error::VError;
use crate::server::Shared;
use crate::stats::WorkerStats;
use crate::store::StoreError;

/// Largest frame body accepted before a successful HELLO: a HELLO is a few hundred bytes.
pub const PRE_AUTH_MAX_BODY: u64 = 4096;
/// Receive buffer kept per connection between reads; a larger one (a large
/// frame went through) is given back once empty.
const READ_CHUNK: usize = 16 * 1024;
const KEEP_READ_CAPACITY: usize = 1 << 20;

/// What a worker thread hands each of its connections.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub stats: Arc<WorkerStats>,
    /// Becomes true when the server starts draining.
    pub drain: watch::Receiver<bool>,
}

enum Step {
    /// Everything complete was run: read more.
    Read,
    /// The output reached the high-water mark: write it, then run the rest.
    Flush,
    /// A fatal error was queued: write everything, then close.
    Close,
    /// A wrong token: answer late, then close.
    AuthFailed(VError),
    /// REPL_SYNC was answered: the connection becomes a replication feed.
    Feed(crate::replication::feed::Plan),
    /// An admin request went to the shell (lease mode): wait for its reply.
    Parked,
}

enum Wake {
    Data,
    Closed,
    Timeout(VError),
    Drain,
}

/// Formats seconds as Python's `{:g}` does for the values settings hold.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// `bytes!r`-like rendering of a bad magic, for the error message.
fn magic_repr(m: &[u8]) -> String {
    let mut s = String::from("b'");
    for &b in m {
        match b {
            b'\'' => s.push_str("\\'"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('\'');
    s
}

pub struct Conn<S> {
    w: Rc<Worker>,
    stream: S,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    rpos: usize,
    /// Bytes the frame at `rpos` needs in all (known once its header is in).
    want: usize,
    out: Vec<u8>,
    d: Dispatcher,
    /// Counted in `unauthenticated` (probation).
    waiting: bool,
    /// Holds a client slot (counted in `connections`).
    slot: bool,
    frames_done: u64,
    frames_at_arm: u64,
    frame_deadline: Option<Instant>,
    hello_deadline: Option<Instant>,
    drain: watch::Receiver<bool>,
}

impl<S> Drop for Conn<S> {
    fn drop(&mut self) {
        let c = &self.w.shared.counters;
        if self.waiting {
            c.leave_probation();
        }
        if self.slot {
            c.release_slot();
        }
    }
}

/// The frames in an output buffer (complete frames only, as the dispatcher writes them).
fn count_frames(out: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while pos + HEADER_LEN <= out.len() {
        let mut lenb = [0u8; 8];
        lenb.copy_from_slice(&out[pos + 6..pos + HEADER_LEN]);
        pos += HEADER_LEN + u64::from_le_bytes(lenb) as usize + TRAILER_LEN;
        n += 1;
    }
    n
}

/// How long, and for how many bytes, a closing connection reads and drops input.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 4 << 20;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(w: Rc<Worker>, stream: S, peer: SocketAddr) -> Self {
        let d = Dispatcher::new(w.shared.clone());
        let drain = w.drain.clone();
        Self {
            drain,
            w,
            stream,
            peer,
            rbuf: Vec::with_capacity(READ_CHUNK),
            rpos: 0,
            want: 0,
            out: Vec::with_capacity(READ_CHUNK),
            d,
            waiting: false,
            slot: false,
            frames_done: 0,
            frames_at_arm: 0,
            frame_deadline: None,
            hello_deadline: None,
        }
    }

    /// Serves the connection until it closes.
    pub async fn run(mut self) {
        let shared = self.w.shared.clone();
        if *self.drain.borrow() {
            self.fatal_now(VError::new(ErrorCode::ShuttingDown, "server is shutting down"))
                .await;
            return;
        }
        if self.d.session.authed {
            // --insecure: a client slot at once.
            if !self.take_slot() {
                self.close().await;
                return;
            }
        } else {
            let max = shared.settings.max_unauthenticated;
            if !shared.counters.enter_probation(max) {
                shared.counters.rejected();
                let e = VError::new(
                    ErrorCode::Busy,
                    format!("{max} connections are already waiting to authenticate"),
                )
                .retry_after(100);
                self.fatal_now(e).await;
                return;
            }
            self.waiting = true;
            self.hello_deadline = Some(Instant::now() + shared.settings.handshake_timeout);
        }
        loop {
            let step = self.process();
            if !self.flush().await {
                return;
            }
            match step {
                Step::Flush => continue,
                Step::Close => {
                    self.close().await;
                    return;
                }
                Step::AuthFailed(e) => {
                    self.auth_failed(e).await;
                    return;
                }
                Step::Feed(plan) => {
                    let leftover = self.rbuf[self.rpos..].to_vec();
                    let (shared, drain) = (self.w.shared.clone(), self.drain.clone());
                    crate::replication::feed::run(&mut self.stream, leftover, plan, shared, drain).await;
                    return;
                }
                Step::Parked => {
                    self.await_admin_reply().await;
                    continue;
                }
                Step::Read => {}
            }
            match self.read().await {
                Wake::Data => {}
                Wake::Closed => return,
                Wake::Timeout(e) => {
                    self.fatal_now(e).await;
                    return;
                }
                Wake::Drain => {
                    // Authenticated: the replies owed were written; close without
                    // an ERROR frame. Still on probation: drop at once.
                    if self.d.session.authed {
                        self.close().await;
                    }
                    return;
                }
            }
        }
    }

    /// Runs the complete frames in the receive buffer.
    fn process(&mut self) -> Step {
        let rbuf = std::mem::take(&mut self.rbuf);
        let step = self.process_in(&rbuf);
        self.rbuf = rbuf;
        step
    }

    fn process_in(&mut self, rbuf: &[u8]) -> Step {
        let w = self.w.clone();
        let shared = &*w.shared;
        let stats = &*w.stats;
        let settings = &shared.settings;
        let high = settings.write_buffer_high_bytes;
        let mut t0: Option<Instant> = None;
        loop {
            let avail = &rbuf[self.rpos..];
            if avail.len() < HEADER_LEN {
                self.want = HEADER_LEN;
                return Step::Read;
            }
            let mut lenb = [0u8; 8];
            lenb.copy_from_slice(&avail[6..HEADER_LEN]);
            let len = u64::from_le_bytes(lenb);
            let magic_ok = avail[..4] == MAGIC;
            if !self.d.session.authed {
                if !magic_ok || len > PRE_AUTH_MAX_BODY {
                    let what = if magic_ok {
                        format!("a frame body of {len} bytes before HELLO")
                    } else {
                        "bad magic".to_string()
                    };
                    return self.fatal(VError::frame(format!(
                        "{what}: only a HELLO of up to {PRE_AUTH_MAX_BODY} bytes is accepted first"
                    )));
                }
            } else if !magic_ok {
                return self.fatal(VError::frame(format!(
                    "bad magic {} at stream offset {}",
                    magic_repr(&avail[..4]),
                    self.rpos
                )));
            } else if len > settings.max_frame_bytes {
                return self.fatal(VError::new(
                    ErrorCode::FrameTooLarge,
                    format!("body of {len} bytes exceeds the limit of {}", settings.max_frame_bytes),
                ));
            }
            // len <= max_frame_bytes (at most 1 GiB): fits a usize.
            let total = HEADER_LEN + len as usize + TRAILER_LEN;
            if avail.len() < total {
                self.want = total;
                return Step::Read;
            }
            let (covered, trailer) = avail[..total].split_at(total - TRAILER_LEN);
            let mut crcb = [0u8; 4];
            crcb.copy_from_slice(trailer);
            let opcode = avail[4];
            if frame::crc32(covered) != u32::from_le_bytes(crcb) {
                return self.fatal(VError::new(
                    ErrorCode::BadCrc,
                    format!("CRC mismatch in frame with opcode 0x{opcode:02x}"),
                ));
            }
            let flags = avail[5];
            let body = &covered[HEADER_LEN..];
            self.rpos += total;
            self.frames_done += 1;
            let started = *t0.get_or_insert_with(Instant::now);
            let before = self.out.len();
            let result = self.d.handle(opcode, flags, body, &mut self.out);
            if let Err(e) = &result {
                stats.error(e.code.as_u16());
                if e.code == ErrorCode::AuthFailed {
                    return Step::AuthFailed(e.clone());
                }
                push_error(&mut self.out, e);
            }
            // Each request's service time runs from the end of the previous one (one
            // clock read per request; the loop between them is part of serving it).
            let now = Instant::now();
            stats.observe(opcode, now.duration_since(started).as_nanos() as u64);
            t0 = Some(now);
            if result.as_ref().is_err_and(|e| e.fatal) {
                return Step::Close;
            }
            if let Some(plan) = self.d.feed.take() {
                return Step::Feed(plan);
            }
            if self.d.parked.is_some() {
                return Step::Parked;
            }
            if !self.slot && self.d.session.authed && !self.take_slot() {
                // The HELLO that ended probation found no client slot: BUSY instead of its reply.
                let busy = self.out.split_off(before);
                drop(busy);
                let e = VError::new(
                    ErrorCode::Busy,
                    format!("connection limit of {} reached", shared.max_connections()),
                )
                .retry_after(100);
                return self.fatal(e);
            }
            if self.out.len() >= high {
                return Step::Flush;
            }
        }
    }

    /// Waits for the shell's reply to the parked admin request and queues it
    /// (the replies before it were written; the requests after it run next).
    async fn await_admin_reply(&mut self) {
        let Some((opcode, rx)) = self.d.parked.take() else {
            return;
        };
        let reply = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(VError::new(ErrorCode::Internal, "the engine dropped the request"))),
            _ = self.drain.wait_for(|d| *d) => Err(VError::new(ErrorCode::ShuttingDown, "server is shutting down")),
        };
        match reply {
            Ok(body) => {
                let start = crate::dispatch::begin_frame(&mut self.out);
                self.out.extend_from_slice(&body);
                crate::dispatch::end_frame(&mut self.out, start, opcode | velocity_proto::Opcode::RESPONSE_BIT, 0);
            }
            Err(e) => {
                self.w.stats.error(e.code.as_u16());
                push_error(&mut self.out, &e);
            }
        }
    }

    /// Leaves probation (if on it) and takes a client slot; false when none is free.
    fn take_slot(&mut self) -> bool {
        let shared = &self.w.shared;
        if self.waiting {
            self.waiting = false;
            self.hello_deadline = None;
            shared.counters.leave_probation();
        }
        if !shared.counters.take_slot(shared.max_connections()) {
            shared.counters.rejected();
            return false;
        }
        self.slot = true;
        true
    }

    /// Queues a fatal error after the replies so far.
    fn fatal(&mut self, e: VError) -> Step {
        self.w.stats.error(e.code.as_u16());
        push_error(&mut self.out, &e);
        Step::Close
    }

    /// Writes the queued replies (after the durability they depend on).
    async fn flush(&mut self) -> bool {
        if let Some(wait) = self.d.pending.take() {
            match wait.await {
                Ok(()) => {}
                Err(StoreError::NotAcknowledged(why)) => {
                    // Sync replication, not acknowledged in time: each reply held becomes
                    // the error (the client cannot know whether its writes happened), as
                    // the Python engine does; the connection stays usable.
                    let e = VError::new(ErrorCode::NotEnoughReplicas, why);
                    let held = count_frames(&self.out);
                    self.out.clear();
                    for _ in 0..held {
                        self.w.stats.error(e.code.as_u16());
                        push_error(&mut self.out, &e);
                    }
                }
                Err(_) => {
                    // The log could not be made durable: never acknowledge those writes.
                    eprintln!(
                        "velocity-core: closing {}: replies withheld because the log sync failed",
                        self.peer
                    );
                    return false;
                }
            }
        }
        if self.out.is_empty() {
            return true;
        }
        let ok = self.stream.write_all(&self.out).await.is_ok() && self.stream.flush().await.is_ok();
        self.w.stats.bytes_out(self.out.len());
        self.out.clear();
        if self.out.capacity() > 2 * self.w.shared.settings.write_buffer_high_bytes {
            self.out.shrink_to(READ_CHUNK);
        }
        ok
    }

    /// Sends one error frame at once (nothing else is owed) and closes.
    async fn fatal_now(&mut self, e: VError) {
        let _ = self.fatal(e);
        if self.flush().await {
            self.close().await;
        }
    }

    /// Closes after what was queued: our side is shut (TLS close_notify, then
    /// FIN), then whatever the client is still sending is read and dropped for a
    /// moment (a lingering close). Closing a socket with unread input would
    /// reset the connection, and the client could lose the reply or ERROR frame
    /// it has not read yet, e.g. a refused oversize frame whose body is still
    /// on its way.
    async fn close(&mut self) {
        self.release_counters();
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut dropped = 0;
        self.rbuf.clear();
        self.rpos = 0;
        while dropped < LINGER_BYTES {
            self.rbuf.clear();
            self.rbuf.reserve(READ_CHUNK);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => dropped += n,
                _ => break,
            }
        }
    }

    /// The connection no longer waits for HELLO nor holds a client slot.
    fn release_counters(&mut self) {
        let c = &self.w.shared.counters;
        if std::mem::take(&mut self.waiting) {
            c.leave_probation();
        }
        if std::mem::take(&mut self.slot) {
            c.release_slot();
        }
    }

    /// A wrong token: keep the probation slot while the throttle's delay runs,
    /// then answer and close (a right token is never delayed).
    async fn auth_failed(&mut self, e: VError) {
        let shared = self.w.shared.clone();
        let delay = shared.throttle.failure(self.peer.ip(), Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.drain.wait_for(|d| *d) => return,
        }
        push_error(&mut self.out, &e);
        if self.flush().await {
            self.close().await;
        }
    }

    /// Waits for bytes, a timer or the drain signal.
    async fn read(&mut self) -> Wake {
        let settings = &self.w.shared.settings;
        // Make room: move a partial frame to the front, give back a large buffer.
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
            if self.rbuf.capacity() > KEEP_READ_CAPACITY {
                self.rbuf = Vec::with_capacity(READ_CHUNK);
            }
            self.frame_deadline = None;
        } else {
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            // A frame is in progress: it must complete within frame_timeout,
            // measured from the last completed frame (progress resets it).
            if self.frame_deadline.is_none() || self.frames_done != self.frames_at_arm {
                self.frame_deadline = Some(Instant::now() + settings.frame_timeout);
                self.frames_at_arm = self.frames_done;
            }
        }
        let need = self.want.saturating_sub(self.rbuf.len()).max(READ_CHUNK);
        self.rbuf.reserve(need);
        let deadline = match (self.hello_deadline, self.frame_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep_to = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            r = self.stream.read_buf(&mut self.rbuf) => match r {
                Ok(0) | Err(_) => Wake::Closed,
                Ok(n) => {
                    self.w.stats.bytes_in(n);
                    Wake::Data
                }
            },
            _ = tokio::time::sleep_until(sleep_to.into()), if deadline.is_some() => {
                let hello = self.hello_deadline.is_some_and(|h| Some(h) == deadline);
                Wake::Timeout(if hello {
                    VError::new(ErrorCode::Timeout, "no HELLO within the handshake timeout")
                } else {
                    VError::new(
                        ErrorCode::Timeout,
                        format!("incomplete frame for {}s", secs(settings.frame_timeout)),
                    )
                })
            }
            _ = self.drain.wait_for(|d| *d) => Wake::Drain,
        }
    }
}
