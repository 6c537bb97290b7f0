//! One V-Proto connection: many requests in flight, replies matched in order.
//!
//! Callers append their frame to the shared output buffer and their reply slot
//! to the FIFO under one lock, so the order of the bytes on the wire and the
//! order of the FIFO always agree (there is no request id: section 5 of the
//! spec). A writer task flushes the buffer in batches; a reader task decodes
//! reply frames and completes the slots front to back. Either task failing
//! fails every request in flight and marks the connection dead; the pool then
//! replaces it. Dropping the last handle stops both tasks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
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
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection was already dead: the request was not sent.
    NotSent(String),
    /// The connection broke after the request was queued: outcome unknown.
    Lost(String),
}

type Slot = oneshot::Sender<Result<Reply, String>>;

#[derive(Default)]
struct State {
    waiting: VecDeque<Slot>,
    out: Vec<u8>,
    dead: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake_writer: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of plain
        // data; the FIFO is still consistent enough to fail everyone.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, reason: String) {
        let waiting = {
            let mut st = self.lock();
            if st.dead.is_none() {
                st.dead = Some(reason.clone());
            }
            st.out = Vec::new();
            std::mem::take(&mut st.waiting)
        };
        for w in waiting {
            let _ = w.send(Err(reason.clone()));
        }
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub(crate) struct Conn {
    shared: Arc<Shared>,
    pub endpoint: Endpoint,
    tasks: [JoinHandle<()>; 2],
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
    pub max_frame_bytes: u64,
}

impl Conn {
    /// TCP connect, TLS 1.3 handshake, HELLO with the token.
    pub async fn open(endpoint: &Endpoint, opts: &ConnectOptions) -> Result<Conn, Error> {
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
        let conn = Conn::start(io, endpoint.clone(), opts.max_frame_bytes);
        let hello = body::hello_request(&opts.token, &opts.client_name, 0);
        let reply = tokio::time::timeout(opts.connect_timeout, conn.request(Opcode::HELLO, 0, &hello))
            .await
            .map_err(|_| connect_err("no HELLO reply in time".into()))?
            .map_err(|f| match f {
                Failure::NotSent(r) | Failure::Lost(r) => connect_err(format!("HELLO: {r}")),
            })?;
        let b = check_reply(Opcode::HELLO, &reply)?;
        body::decode::<fbs::HelloResponse>(b).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(conn)
    }

    fn start(io: Box<dyn IoBox>, endpoint: Endpoint, max_frame_bytes: u64) -> Conn {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_writer: Notify::new(),
        });
        let (rd, wr) = tokio::io::split(io);
        let reader = tokio::spawn(read_loop(rd, shared.clone(), max_frame_bytes));
        let writer = tokio::spawn(write_loop(wr, shared.clone()));
        Conn {
            shared,
            endpoint,
            tasks: [reader, writer],
        }
    }

    /// Fails every request in flight and marks the connection dead (after a
    /// timeout: later replies would queue behind the missing one).
    pub fn close(&self, reason: &str) {
        self.shared.fail(reason.to_owned());
    }

    pub fn is_alive(&self) -> bool {
        self.shared.lock().dead.is_none()
    }

    /// Queues one request and waits for its reply.
    pub async fn request(&self, opcode: Opcode, flags: u8, body: &[u8]) -> Result<Reply, Failure> {
        let rx = {
            let mut st = self.shared.lock();
            if let Some(reason) = &st.dead {
                return Err(Failure::NotSent(reason.clone()));
            }
            let (tx, rx) = oneshot::channel();
            st.waiting.push_back(tx);
            frame::encode(opcode, flags, body, &mut st.out);
            rx
        };
        self.shared.wake_writer.notify_one();
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(reason)) => Err(Failure::Lost(reason)),
            Err(_) => Err(Failure::Lost("connection closed".into())),
        }
    }
}

trait IoBox: Io {}
impl<T: Io> IoBox for T {}

async fn write_loop(mut wr: tokio::io::WriteHalf<Box<dyn IoBox>>, shared: Arc<Shared>) {
    let mut batch = Vec::new();
    loop {
        shared.wake_writer.notified().await;
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
                    let slot = shared.lock().waiting.pop_front();
                    match slot {
                        Some(tx) => {
                            let _ = tx.send(Ok(reply));
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
