//! The replica's side (follower.py's counterpart): a thread with its own
//! current-thread tokio runtime that connects to the primary (TLS 1.3 with the
//! replica CA unless `--insecure`), says HELLO with the replication token,
//! sends REPL_SYNC with its log position and stream version 2 (version 1 when
//! the primary is a Python node: stream_v1.rs, the upgrade path), then applies
//! what comes: the full copy (installed atomically at its end), batches (logged
//! as received), heartbeats (echoed at once). After the frames of one read it
//! acknowledges its position once its storage made it durable (LSM storage under
//! `appendfsync always`: after the fdatasync; otherwise at once, as follower.py).
//! It reconnects after any failure, follows a REDIRECT, and stops on request.
//!
//! Also here: the client calls one node makes to another (the new primary's
//! REPLICA_OF to the deposed one: fencing).

use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use velocity_proto::{body, frame, ErrorCode, Opcode};

use super::stream;
use crate::auth::Role;
use crate::server::Shared;
use crate::store::{Key, Record};

/// A primary silent for this long is given up (replication.md: 3 s).
const SILENCE: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(200);
const FENCE_RETRY: Duration = Duration::from_millis(500);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Pin<Box<dyn Io>>;

/// A running follower.
pub struct Handle {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    progress: Arc<Progress>,
}

/// What INFO shows of the link (follower.py's `info`).
#[derive(Default)]
struct Progress {
    /// The primary's seq by its last heartbeat.
    primary_seq: AtomicU64,
    /// Unix ms of the last frame from the primary.
    contact_ms: AtomicU64,
    /// Unix ms when this replica last held everything the primary announced.
    caught_up_ms: AtomicU64,
    link_up: AtomicBool,
    syncing: AtomicBool,
    /// The stream version of the current (or last) session: 2, or 1 from a Python primary.
    stream_version: AtomicU16,
    full_copies: AtomicU64,
    primary: Mutex<String>,
    last_error: Mutex<String>,
    /// Monotonic time of the last frame from the primary (the replica's promise runs from it).
    last_contact: Mutex<Option<Instant>>,
}

fn now_ms() -> u64 {
    crate::keyspace::wall_ms() as u64
}

impl Handle {
    /// Stops the follower and waits for its thread (a frame being applied completes).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// (records, seconds) behind the primary, as far as this replica can tell:
    /// without a link, the time since the last contact; with one, since it last
    /// held everything the primary announced.
    pub fn lag(&self, applied: u64) -> (u64, f64) {
        let p = &self.progress;
        let n = p.primary_seq.load(Ordering::Acquire).saturating_sub(applied);
        let since = |at: u64| {
            if at == 0 {
                0.0
            } else {
                now_ms().saturating_sub(at) as f64 / 1000.0
            }
        };
        if !p.link_up.load(Ordering::Acquire) {
            return (n, since(p.contact_ms.load(Ordering::Acquire)));
        }
        if n == 0 && !p.syncing.load(Ordering::Acquire) {
            return (0, 0.0);
        }
        (n, since(p.caught_up_ms.load(Ordering::Acquire)))
    }

    /// The stream version spoken with the primary (0 before the first session).
    pub fn stream_version(&self) -> u16 {
        self.progress.stream_version.load(Ordering::Acquire)
    }

    /// When this follower last heard from its primary.
    pub fn last_contact(&self) -> Option<Instant> {
        *self.progress.last_contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// INFO's `replication.link` (the same keys as the Python follower's).
    pub fn info(&self, applied: u64) -> serde_json::Value {
        let p = &self.progress;
        let (lag_records, lag_seconds) = self.lag(applied);
        let contact = p.contact_ms.load(Ordering::Acquire);
        serde_json::json!({
            "primary": *p.primary.lock().unwrap_or_else(|e| e.into_inner()),
            "link_up": p.link_up.load(Ordering::Acquire),
            "full_copy_in_progress": p.syncing.load(Ordering::Acquire),
            "stream_version": p.stream_version.load(Ordering::Acquire),
            "full_copies": p.full_copies.load(Ordering::Acquire),
            "last_contact_s_ago": if contact == 0 {
                serde_json::Value::Null
            } else {
                serde_json::json!(now_ms().saturating_sub(contact) as f64 / 1000.0)
            },
            "lag_records": lag_records,
            "lag_seconds": (lag_seconds * 1000.0).round() / 1000.0,
            "last_error": *p.last_error.lock().unwrap_or_else(|e| e.into_inner()),
            "now_ms": now_ms(),
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts following `primary`.
pub fn spawn(shared: Arc<Shared>, primary: String, not_before: Option<Instant>) -> Handle {
    let (tx, rx) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let thread = std::thread::Builder::new()
        .name("velocity-follower".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("velocity-core: cannot start the follower: {e}");
                    return;
                }
            };
            rt.block_on(follow(shared, primary, rx, p, not_before));
        })
        .ok();
    Handle {
        stop: tx,
        thread,
        progress,
    }
}

/// Why a session with the primary ended.
enum End {
    Stopped,
    Redirect(String),
    Failed(String),
    /// The primary refused the stream version offered (UNSUPPORTED_VERSION): the
    /// message, and the other version is tried at once.
    OtherVersion(String),
}

async fn follow(
    shared: Arc<Shared>,
    mut primary: String,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
    not_before: Option<Instant>,
) {
    if let Some(at) = not_before.filter(|at| *at > Instant::now()) {
        eprintln!(
            "velocity-core: following {primary} in {:.2}s: the previous primary's read lease must run out first",
            (at - Instant::now()).as_secs_f64()
        );
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let mut last_error = String::new();
    // Version 2 first; a Python primary refuses it and the next session offers 1. Each
    // version is offered once in a row without waiting; two refusals in a row wait RETRY.
    let mut version = stream::STREAM_VERSION;
    let mut refused_before = false;
    loop {
        if *stop.borrow() {
            return;
        }
        *progress.primary.lock().unwrap_or_else(|e| e.into_inner()) = primary.clone();
        let end = tokio::select! {
            e = session(&shared, &primary, &progress, version) => e,
            _ = stop.wait_for(|s| *s) => End::Stopped,
        };
        let refused = matches!(end, End::OtherVersion(_));
        let end = match end {
            End::OtherVersion(why) => {
                version = if version == stream::STREAM_VERSION {
                    stream::LEGACY_VERSION
                } else {
                    stream::STREAM_VERSION
                };
                if !refused_before {
                    refused_before = true;
                    eprintln!(
                        "velocity-core: {primary} refused the stream version offered; offering version {version}"
                    );
                    continue;
                }
                End::Failed(why)
            }
            other => other,
        };
        refused_before = refused;
        progress.link_up.store(false, Ordering::Release);
        progress.syncing.store(false, Ordering::Release);
        match end {
            End::Stopped => return,
            End::Redirect(p) if !p.is_empty() && p != primary => {
                eprintln!("velocity-core: {primary} redirects to {p}: following it");
                shared.repl.redirected(&p);
                primary = p;
                version = stream::STREAM_VERSION;
                continue;
            }
            End::Redirect(_) | End::OtherVersion(_) => {}
            End::Failed(why) => {
                // Log a repeated failure once, not every retry.
                if why != last_error {
                    eprintln!("velocity-core: replication from {primary}: {why}; retrying");
                    *progress.last_error.lock().unwrap_or_else(|e| e.into_inner()) = why.clone();
                    last_error = why;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Parses `vdb://HOST:PORT` (or `HOST:PORT`).
pub fn parse_endpoint(ep: &str) -> Result<(String, u16), String> {
    let rest = ep.strip_prefix("vdb://").unwrap_or(ep);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {ep:?} is not vdb://HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("bad port in endpoint {ep:?}"))?;
    Ok((host.to_string(), port))
}

fn client_tls(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the replica CA {}: {e}", ca.display()))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("bad certificate in {}: {e}", ca.display()))?;
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// Connects to another node and says HELLO with the token of `role` (none under
/// `--insecure`). A primary that refuses the replication token with AUTH_FAILED
/// may be an engine from before token roles: the client token is presented
/// instead, on a new connection (follower.py does the same).
async fn connect(shared: &Shared, endpoint: &str, role: Role) -> Result<(Conn, Vec<u8>), String> {
    let s = &shared.settings;
    let token = match role {
        Role::Admin => s.repl.admin_token.clone(),
        _ => s.repl.replication_token.clone(),
    };
    if s.insecure {
        return connect_with(shared, endpoint, None).await.map_err(Refused::message);
    }
    let token = token.ok_or_else(|| format!("no {} token to present to {endpoint}", role.name()))?;
    match connect_with(shared, endpoint, Some(&token)).await {
        Err(Refused::Auth(why)) if role == Role::Replication => match s.repl.legacy_token.as_deref() {
            Some(legacy) => connect_with(shared, endpoint, Some(legacy)).await.map_err(|e| {
                format!(
                    "{why}; the client token (a primary from before token roles) too: {}",
                    e.message()
                )
            }),
            None => Err(why),
        },
        other => other.map_err(Refused::message),
    }
}

/// Why [`connect_with`] failed: the token was refused, or anything else.
enum Refused {
    Auth(String),
    Other(String),
}

impl Refused {
    fn message(self) -> String {
        match self {
            Refused::Auth(m) | Refused::Other(m) => m,
        }
    }
}

impl From<String> for Refused {
    fn from(m: String) -> Self {
        Refused::Other(m)
    }
}

impl From<&str> for Refused {
    fn from(m: &str) -> Self {
        Refused::Other(m.to_string())
    }
}

async fn connect_with(shared: &Shared, endpoint: &str, token: Option<&str>) -> Result<(Conn, Vec<u8>), Refused> {
    let (host, port) = parse_endpoint(endpoint)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {endpoint}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {endpoint}"))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {endpoint} timed out"))?
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let s = &shared.settings;
    let mut conn: Conn = if s.tls.is_some() {
        let ca = s
            .repl
            .replica_ca
            .clone()
            .ok_or("TLS is on but no replica CA was given (--replica-ca)")?;
        let connector = client_tls(&ca)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("bad server name {host}: {e}"))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| format!("TLS handshake with {endpoint} timed out"))?
            .map_err(|e| format!("TLS handshake with {endpoint} failed: {e}"))?;
        Box::pin(tls)
    } else {
        Box::pin(tcp)
    };
    let mut rbuf = Vec::new();
    if let Some(token) = token {
        let hello = body::hello_request(token, &format!("replica {}", s.node_id), 0);
        write_frame(&mut conn, Opcode::HELLO, &hello).await?;
        let (op, b) = read_frame(&mut conn, &mut rbuf, s.max_frame_bytes).await?;
        if op == Opcode::ERROR {
            let (code, msg, _, _) = stream::decode_error(&b);
            let why = format!("{endpoint} refused HELLO: {} {msg}", code.name());
            return Err(if code == ErrorCode::AuthFailed {
                Refused::Auth(why)
            } else {
                Refused::Other(why)
            });
        }
    }
    Ok((conn, rbuf))
}

async fn write_frame(conn: &mut Conn, op: Opcode, b: &[u8]) -> Result<(), String> {
    let mut out = Vec::with_capacity(b.len() + 32);
    frame::encode(op, 0, b, &mut out);
    conn.write_all(&out).await.map_err(|e| format!("write failed: {e}"))?;
    conn.flush().await.map_err(|e| format!("write failed: {e}"))
}

/// Reads one frame (waiting at most [`SILENCE`]); returns its opcode and body.
async fn read_frame(conn: &mut Conn, rbuf: &mut Vec<u8>, max: u64) -> Result<(Opcode, Vec<u8>), String> {
    loop {
        if let Some((op, b, used)) = take_frame(rbuf, max)? {
            rbuf.drain(..used);
            return Ok((op, b));
        }
        fill(conn, rbuf).await?;
    }
}

fn take_frame(rbuf: &[u8], max: u64) -> Result<Option<(Opcode, Vec<u8>, usize)>, String> {
    match frame::decode(rbuf, max) {
        Ok(Some((f, used))) => Ok(Some((f.opcode, f.body.to_vec(), used))),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("broken frame from the primary: {e}")),
    }
}

async fn fill(conn: &mut Conn, rbuf: &mut Vec<u8>) -> Result<(), String> {
    rbuf.reserve(64 * 1024);
    match tokio::time::timeout(SILENCE, conn.read_buf(rbuf)).await {
        Err(_) => Err(format!("nothing from the primary for {}s", SILENCE.as_secs())),
        Ok(Ok(0)) => Err("the primary closed the connection".into()),
        Ok(Err(e)) => Err(format!("read failed: {e}")),
        Ok(Ok(_)) => Ok(()),
    }
}

async fn session(shared: &Arc<Shared>, primary: &str, progress: &Progress, version: u16) -> End {
    match session_inner(shared, primary, progress, version).await {
        Ok(end) | Err(end) => end,
    }
}

async fn session_inner(shared: &Arc<Shared>, primary: &str, progress: &Progress, version: u16) -> Result<End, End> {
    let fail = End::Failed;
    let repl = &shared.repl;
    let store = shared.keyspace.store();
    let max = shared.settings.max_frame_bytes;
    let (mut conn, mut rbuf) = connect(shared, primary, Role::Replication).await.map_err(fail)?;
    let (epoch, seq) = store.log_position();
    let req = stream::SyncRequest {
        node_id: shared.settings.node_id.clone(),
        endpoint: repl.endpoint(),
        epoch,
        seq,
        full: repl.incomplete.load(Ordering::Acquire),
        node_epoch: repl.epoch(),
        // A version-1 primary from before the field ignores it; one that knows it
        // refuses 2. Version 1 is offered as the absent field, as a Python replica sends it.
        stream_version: if version == stream::STREAM_VERSION { version } else { 0 },
    };
    write_frame(&mut conn, Opcode::REPL_SYNC, &stream::sync_request(&req))
        .await
        .map_err(fail)?;
    let (op, b) = read_frame(&mut conn, &mut rbuf, max).await.map_err(fail)?;
    if op == Opcode::ERROR {
        let (code, msg, p, _) = stream::decode_error(&b);
        return Err(match code {
            ErrorCode::Redirect => End::Redirect(p),
            ErrorCode::UnsupportedVersion => {
                End::OtherVersion(format!("{primary} refused REPL_SYNC: {} {msg}", code.name()))
            }
            _ => End::Failed(format!("{primary} refused REPL_SYNC: {} {msg}", code.name())),
        });
    }
    if op != Opcode::REPL_SYNC.response() {
        return Err(fail(format!("unexpected reply 0x{:02x} to REPL_SYNC", op.0)));
    }
    let resp = stream::decode_sync_response(&b).map_err(|e| fail(e.message))?;
    // From here on, what the primary sends is read in the version it answered with.
    let version = stream::accept(resp.stream_version, primary).map_err(fail)?;
    progress
        .stream_version
        .store(stream::announced(resp.stream_version), Ordering::Release);
    if resp.epoch < repl.epoch() {
        return Err(fail(format!(
            "{primary} is in epoch {}, below this node's {}: not following a deposed primary",
            resp.epoch,
            repl.epoch()
        )));
    }
    repl.adopt(resp.epoch, resp.history.clone());
    progress.link_up.store(true, Ordering::Release);
    progress.contact_ms.store(now_ms(), Ordering::Release);
    progress.primary_seq.store(resp.seq, Ordering::Release);
    if resp.full {
        progress.full_copies.fetch_add(1, Ordering::AcqRel);
        progress.syncing.store(true, Ordering::Release);
    }
    eprintln!(
        "velocity-core: following {primary} (epoch {}): {}",
        resp.epoch,
        if resp.full {
            format!("full copy at seq {}", resp.seq)
        } else {
            format!("resuming after seq {}", resp.seq)
        }
    );
    let mut copy: Option<Vec<(Key, Record)>> = if resp.full {
        repl.incomplete.store(true, Ordering::Release);
        Some(Vec::new())
    } else {
        None
    };
    let mut acked = if resp.full { 0 } else { seq };
    // The durability wait of the newest batch applied and not yet acknowledged.
    let mut unsynced: Option<crate::store::DurabilityWait> = None;
    loop {
        fill(&mut conn, &mut rbuf).await.map_err(fail)?;
        let mut echoes = Vec::new();
        while let Some((op, b, used)) = take_frame(&rbuf, max).map_err(fail)? {
            rbuf.drain(..used);
            progress.contact_ms.store(now_ms(), Ordering::Release);
            *progress.last_contact.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            match op {
                Opcode::REPL_SNAPSHOT => {
                    let Some(records) = copy.as_mut() else {
                        return Err(fail("REPL_SNAPSHOT outside a full copy".into()));
                    };
                    let (recs, last) = stream::decode_snapshot(&b, version).map_err(|e| fail(e.message))?;
                    records.extend(recs);
                    if last {
                        let records = copy.take().unwrap_or_default();
                        let n = records.len();
                        let pos = (super::epoch_of(&resp.history, resp.seq), resp.seq);
                        store.install_copy(pos, records).map_err(|e| fail(e.to_string()))?;
                        repl.incomplete.store(false, Ordering::Release);
                        progress.syncing.store(false, Ordering::Release);
                        eprintln!("velocity-core: full copy of {n} keys installed at seq {}", resp.seq);
                    }
                }
                Opcode::REPL_BATCHES => {
                    if copy.is_some() {
                        return Err(fail("REPL_BATCHES before the full copy ended".into()));
                    }
                    for raw in stream::decode_batches(&b, version).map_err(|e| fail(e.message))? {
                        let c = store.apply_replicated(raw).map_err(|e| fail(e.to_string()))?;
                        // Batches become durable in order: the newest wait covers the rest.
                        if c.durable.is_some() {
                            unsynced = c.durable;
                        }
                    }
                }
                Opcode::REPL_HEARTBEAT => {
                    let (_, pseq, t) = stream::decode_heartbeat(&b).map_err(|e| fail(e.message))?;
                    progress.primary_seq.store(pseq, Ordering::Release);
                    echoes.push(t);
                }
                Opcode::ERROR => {
                    let (code, msg, _, _) = stream::decode_error(&b);
                    return Err(fail(format!("{primary} ended the stream: {} {msg}", code.name())));
                }
                other => return Err(fail(format!("unexpected opcode 0x{:02x} on the stream", other.0))),
            }
        }
        let (_, applied) = store.log_position();
        if applied >= progress.primary_seq.load(Ordering::Acquire) {
            progress.caught_up_ms.store(now_ms(), Ordering::Release);
        }
        let mut out = Vec::new();
        for t in echoes {
            frame::encode(
                Opcode::REPL_HEARTBEAT,
                0,
                &stream::heartbeat_body(repl.epoch(), applied, t),
                &mut out,
            );
        }
        if !out.is_empty() {
            // Echoes go out before any fdatasync wait: they prove contact, not durability.
            conn.write_all(&out)
                .await
                .map_err(|e| fail(format!("write failed: {e}")))?;
            conn.flush().await.map_err(|e| fail(format!("write failed: {e}")))?;
        }
        if copy.is_none() && applied != acked {
            // An ACK covers only what this node made durable (follower.py `_ack`): under
            // `appendfsync always` it waits for the fdatasync of the newest batch applied;
            // if that fails the log refuses writes (fail-stop) and nothing is acknowledged.
            if let Some(w) = unsynced.take() {
                w.await
                    .map_err(|e| fail(format!("not acknowledging seq {applied}: {e}")))?;
            }
            let mut ack = Vec::new();
            frame::encode(Opcode::REPL_ACK, 0, &stream::ack_body(applied), &mut ack);
            conn.write_all(&ack)
                .await
                .map_err(|e| fail(format!("write failed: {e}")))?;
            conn.flush().await.map_err(|e| fail(format!("write failed: {e}")))?;
            acked = applied;
        }
    }
}

/// One request to another node; the reply body or why not.
pub async fn call(
    shared: &Shared,
    endpoint: &str,
    role: Role,
    op: Opcode,
    req: &[u8],
) -> Result<Vec<u8>, (ErrorCode, String)> {
    let (mut conn, mut rbuf) = connect(shared, endpoint, role)
        .await
        .map_err(|e| (ErrorCode::Internal, e))?;
    write_frame(&mut conn, op, req)
        .await
        .map_err(|e| (ErrorCode::Internal, e))?;
    let (rop, b) = read_frame(&mut conn, &mut rbuf, shared.settings.max_frame_bytes)
        .await
        .map_err(|e| (ErrorCode::Internal, e))?;
    if rop == Opcode::ERROR {
        let (code, msg, _, _) = stream::decode_error(&b);
        return Err((code, msg));
    }
    Ok(b)
}

/// After a promotion: tell the former primary about the new epoch (REPLICA_OF
/// naming this node) until it has stepped down, this node stops being the
/// primary of `epoch`, or the former primary reports a newer epoch (then this
/// node steps down).
pub fn spawn_fencer(shared: Arc<Shared>, target: String, epoch: u64) {
    let name = target.clone();
    let spawned = std::thread::Builder::new()
        .name("velocity-fencer".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let repl = &shared.repl;
                let body = stream::replica_of_request(&repl.endpoint(), epoch);
                let started = Instant::now();
                while repl.is_primary() && repl.epoch() == epoch && !shared.draining() {
                    match call(&shared, &target, Role::Admin, Opcode::REPLICA_OF, &body).await {
                        Ok(_) => {
                            eprintln!("velocity-core: fenced the former primary {target}: it now follows this node");
                            return;
                        }
                        Err((ErrorCode::StaleEpoch, msg)) => {
                            eprintln!("velocity-core: {target} has seen a newer epoch ({msg}): stepping down");
                            repl.step_down_for(epoch + 1, &format!("{target} reports a newer epoch"));
                            return;
                        }
                        Err(_) if started.elapsed() > Duration::from_secs(3600) => return,
                        Err(_) => tokio::time::sleep(FENCE_RETRY).await,
                    }
                }
            });
        });
    if let Err(e) = spawned {
        eprintln!("velocity-core: cannot start the fencer of {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("vdb://127.0.0.1:7000").unwrap(),
            ("127.0.0.1".into(), 7000)
        );
        assert_eq!(parse_endpoint("vdb://[::1]:1").unwrap(), ("::1".into(), 1));
        assert!(parse_endpoint("vdb://host").is_err());
        assert!(parse_endpoint("vdb://host:x").is_err());
    }
}
