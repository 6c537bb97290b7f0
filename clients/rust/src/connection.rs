//! One V-Proto connection: many requests in flight, replies matched in order.
//!
//! Callers append their frame to the shared output buffer and their reply slot
//! to the FIFO under one lock, so the order of the bytes on the wire and the
//! order of the FIFO always agree (there is no request id: section 5 of the
//! spec). A writer task flushes the buffer in batches (the requests queued by
//! the tasks ready to run when the first one woke it go out in one write); a
//! reader task decodes reply frames and completes the slots front to back; a
//! watchdog task enforces the request timeout on the oldest request (replies
//! come in order, so when it is late, everything behind it is stuck too). Any
//! of them failing fails every request in flight and marks the connection
//! dead; the pool then replaces it. Dropping the last handle stops the tasks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use velocity_proto::{body, fbs, frame, Opcode};

use crate::endpoint::Endpoint;
use crate::Error;

/// A reply frame, owned.
pub(crate) struct Reply {
    pub opcode: Opcode,
    pub flags: u8,
    pub body: Vec<u8>,
}

/// Why a request got no reply.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// The connection was already dead: the request was not sent.
    NotSent(String),
    /// The connection broke after the request was queued: outcome unknown.
    Lost(String),
    /// No reply within the request timeout (the connection is closed: the
    /// replies behind this one are stuck behind it).
    TimedOut,
}

/// A request waiting for its reply.
struct Waiting {
    slot: oneshot::Sender<Result<Reply, Failure>>,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Waiting>,
    out: Vec<u8>,
    dead: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    /// Mirrors `state.dead.is_some()`, read without the lock.
    dead: AtomicBool,
    wake_writer: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of plain
        // data; the FIFO is still consistent enough to fail everyone.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the connection dead and fails every request waiting: the first
    /// with `first` (when given), the others with `Lost(reason)`.
    fn fail_with(&self, reason: String, first: Option<Failure>) {
        let waiting = {
            let mut st = self.lock();
            if st.dead.is_none() {
                st.dead = Some(reason.clone());
            }
            self.dead.store(true, Ordering::Release);
            st.out = Vec::new();
            std::mem::take(&mut st.waiting)
        };
        self.wake_writer.notify_one(); // so that it sees `dead` and stops
        let mut first = first;
        for w in waiting {
            let failure = first.take().unwrap_or_else(|| Failure::Lost(reason.clone()));
            let _ = w.slot.send(Err(failure));
        }
    }

    fn fail(&self, reason: String) {
        self.fail_with(reason, None);
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub(crate) struct Conn {
    shared: Arc<Shared>,
    pub endpoint: Endpoint,
    request_timeout: Duration,
    tasks: [JoinHandle<()>; 3],
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.fail("connection closed by the client".into());
    }
}

/// Connection settings shared by every connection of a pool.
#[derive(Clone)]
pub(crate) struct ConnectOptions {
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub token: String,
    pub client_name: String,
    pub connect_timeout: Duration,
    /// Limit on waiting for one reply (enforced per connection, see [`watchdog`]).
    pub request_timeout: Duration,
    pub max_frame_bytes: u64,
}

impl Conn {
    /// TCP connect, TLS 1.3 handshake, HELLO with the token.
    pub(crate) async fn open(endpoint: &Endpoint, opts: &ConnectOptions) -> Result<Conn, Error> {
        let ep = endpoint.to_string();
        let connect_err = |reason: String| Error::Connect {
            endpoint: ep.clone(),
            reason,
        };
        let addr = (endpoint.host(), endpoint.port());
        let tcp = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {:?}", opts.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn IoBox> = match &opts.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(endpoint.host().to_owned())
                    .map_err(|e| Error::InvalidArgument(format!("{ep}: not a valid TLS server name: {e}")))?;
                let stream = tokio::time::timeout(opts.connect_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| Error::Tls {
                        endpoint: ep.clone(),
                        reason: "handshake timed out".into(),
                    })?
                    .map_err(|e| Error::Tls {
                        endpoint: ep.clone(),
                        reason: e.to_string(),
                    })?;
                Box::new(stream)
            }
        };
        let conn = Conn::start(io, endpoint.clone(), opts);
        let hello = body::hello_request(&opts.token, &opts.client_name, 0);
        let reply = tokio::time::timeout(opts.connect_timeout, conn.request(Opcode::HELLO, 0, &hello))
            .await
            .map_err(|_| connect_err("no HELLO reply in time".into()))?
            .map_err(|f| match f {
                Failure::NotSent(r) | Failure::Lost(r) => connect_err(format!("HELLO: {r}")),
                Failure::TimedOut => connect_err("no HELLO reply in time".into()),
            })?;
        let b = check_reply(Opcode::HELLO, &reply)?;
        body::decode::<fbs::HelloResponse>(b).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(conn)
    }

    fn start(io: Box<dyn IoBox>, endpoint: Endpoint, opts: &ConnectOptions) -> Conn {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            dead: AtomicBool::new(false),
            wake_writer: Notify::new(),
        });
        let (rd, wr) = tokio::io::split(io);
        let reader = tokio::spawn(read_loop(rd, shared.clone(), opts.max_frame_bytes));
        let writer = tokio::spawn(write_loop(wr, shared.clone()));
        let watchdog = tokio::spawn(watchdog(shared.clone(), opts.request_timeout));
        Conn {
            shared,
            endpoint,
            request_timeout: opts.request_timeout,
            tasks: [reader, writer, watchdog],
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.shared.dead.load(Ordering::Acquire)
    }

    /// Queues one request and waits for its reply (at most the request timeout).
    pub(crate) async fn request(&self, opcode: Opcode, flags: u8, body: &[u8]) -> Result<Reply, Failure> {
        let now = Instant::now();
        // A timeout too large to add ("never") becomes 30 years.
        let deadline = now
            .checked_add(self.request_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        let (rx, first) = {
            let mut st = self.shared.lock();
            if let Some(reason) = &st.dead {
                return Err(Failure::NotSent(reason.clone()));
            }
            let (tx, rx) = oneshot::channel();
            st.waiting.push_back(Waiting { slot: tx, deadline });
            let first = st.out.is_empty();
            frame::encode(opcode, flags, body, &mut st.out);
            (rx, first)
        };
        // A non-empty buffer already has a flush coming: the request that made it
        // non-empty woke the writer, which takes the whole buffer.
        if first {
            self.shared.wake_writer.notify_one();
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Failure::Lost("connection closed".into())),
        }
    }
}

/// Pending once, after waking itself: a task that wakes itself while it runs
/// goes to the back of the scheduler's run queue, behind the tasks already
/// ready (the callers woken by the same burst of replies). Unlike
/// `tokio::task::yield_now`, which waits for the next poll of the I/O driver
/// (the end of the whole tick), this flushes each connection's burst as soon as
/// it is complete, so the server starts on it while the other connections'
/// replies are still being handled.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

trait IoBox: Io {}
impl<T: Io> IoBox for T {}

async fn write_loop(mut wr: tokio::io::WriteHalf<Box<dyn IoBox>>, shared: Arc<Shared>) {
    let mut batch = Vec::new();
    loop {
        shared.wake_writer.notified().await;
        // Woken by the first request of a burst. Let the tasks already waiting to
        // run queue their requests too, so that one write carries them all: the
        // scheduler runs a task woken by the running one next (its LIFO slot), so
        // without this every request would cost a syscall of its own.
        YieldOnce(false).await;
        loop {
            {
                let mut st = shared.lock();
                if st.dead.is_some() {
                    return;
                }
                std::mem::swap(&mut st.out, &mut batch);
            }
            if batch.is_empty() {
                break;
            }
            let res = async {
                wr.write_all(&batch).await?;
                wr.flush().await
            }
            .await;
            if let Err(e) = res {
                shared.fail(format!("write failed: {e}"));
                return;
            }
            batch.clear();
            if batch.capacity() > 1 << 20 {
                batch = Vec::new();
            }
        }
    }
}

async fn read_loop(mut rd: tokio::io::ReadHalf<Box<dyn IoBox>>, shared: Arc<Shared>, max_frame_bytes: u64) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let reason = loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) => break "connection closed by the server".to_owned(),
            Ok(n) => n,
            Err(e) => break format!("read failed: {e}"),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let failure = loop {
            match frame::decode(&buf[pos..], max_frame_bytes) {
                Ok(None) => break None,
                Err(e) => break Some(format!("bad frame from the server: {e}")),
                Ok(Some((f, used))) => {
                    pos += used;
                    let reply = Reply {
                        opcode: f.opcode,
                        flags: f.flags,
                        body: f.body.to_vec(),
                    };
                    let waiting = shared.lock().waiting.pop_front();
                    match waiting {
                        Some(w) => {
                            let _ = w.slot.send(Ok(reply));
                        }
                        None => break Some(unsolicited(&reply)),
                    }
                }
            }
        };
        if let Some(reason) = failure {
            break reason;
        }
        buf.drain(..pos);
    };
    shared.fail(reason);
}

/// Fails the connection when its oldest request is past its deadline.
///
/// One timer per connection instead of one per request: replies come in order,
/// so the oldest request is the first that can be late, and when it is, every
/// request behind it waits too.
async fn watchdog(shared: Arc<Shared>, timeout: Duration) {
    loop {
        let oldest = {
            let st = shared.lock();
            if st.dead.is_some() {
                return;
            }
            st.waiting.front().map(|w| w.deadline)
        };
        match oldest {
            // A request queued from now on is due no earlier than a timeout from now.
            None => tokio::time::sleep(timeout).await,
            Some(deadline) if deadline > Instant::now() => tokio::time::sleep_until(deadline).await,
            Some(_) => {
                shared.fail_with("a request on this connection timed out".into(), Some(Failure::TimedOut));
                return;
            }
        }
    }
}

/// A frame with no request outstanding: a server says why it closes (BUSY, SHUTTING_DOWN, TIMEOUT).
fn unsolicited(reply: &Reply) -> String {
    match check_reply(Opcode(0), reply) {
        Err(Error::Server { code, message, .. }) => format!("server closed the connection: {code}: {message}"),
        _ => format!("reply (opcode 0x{:02x}) with no request outstanding", reply.opcode.0),
    }
}

/// The reply body for `request`, or the server's error.
pub(crate) fn check_reply(request: Opcode, reply: &Reply) -> Result<&[u8], Error> {
    if reply.flags != 0 {
        // We never announce zstd, and responses carry consistency 0.
        return Err(Error::Protocol(format!("unexpected reply flags 0x{:02x}", reply.flags)));
    }
    if reply.opcode == Opcode::ERROR {
        let e = body::decode::<fbs::ErrorResponse>(&reply.body).map_err(|e| Error::Protocol(e.to_string()))?;
        return Err(Error::server(
            e.code(),
            e.message().unwrap_or_default(),
            e.primary().unwrap_or_default(),
            e.retry_after_ms(),
        ));
    }
    if reply.opcode != request.response() {
        return Err(Error::Protocol(format!(
            "reply opcode 0x{:02x} does not answer request 0x{:02x}",
            reply.opcode.0, request.0
        )));
    }
    Ok(&reply.body)
}
