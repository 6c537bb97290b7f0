//! [`Client`]: a pool of pipelined connections, and every operation.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use velocity_proto::body::{self, Cas, EntryRef};
use velocity_proto::frame::Consistency;
use velocity_proto::{fbs, flatbuffers, ErrorCode, Opcode};

use crate::connection::{check_reply, Conn, ConnectOptions, Failure, Reply};
use crate::endpoint::Endpoint;
use crate::{tls, Error, Result, Ttl, Value};

/// Redirects followed at once before pausing between them (two nodes naming
/// each other for a moment during a hand-over).
const MAX_REDIRECTS: u32 = 3;
/// How long a request keeps following redirects or waiting for a node without a primary.
const FENCED_RETRY: Duration = Duration::from_secs(2);
/// Pause between redirects past [`MAX_REDIRECTS`].
const REDIRECT_LOOP_PAUSE: Duration = Duration::from_millis(50);
/// Reconnect backoff: first delay, doubling up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Builds a [`Client`]; see [`Client::builder`].
///
/// Defaults: endpoint `vdb://127.0.0.1:2005`, 4 connections, token from
/// `VDB_TOKEN`, CA from `VDB_CA` (a PEM file path, or PEM text) or else the
/// system's trust store, TLS 1.3 only, 10 s connect and request timeouts.
///
/// ```no_run
/// # async fn demo() -> Result<(), velocity_sdk::Error> {
/// use std::time::Duration;
/// let client = velocity_sdk::Client::builder()
///     .endpoint("vdb://alpha.default.svc")
///     .pool_size(16)
///     .token(std::fs::read_to_string("/etc/velocity/token").unwrap_or_default().trim())
///     .ca_file("/etc/velocity/ca.crt")
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(5))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    pool_size: usize,
    token: Option<String>,
    ca: Option<tls::Ca>,
    insecure: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    client_name: String,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            endpoints: vec!["vdb://127.0.0.1:2005".into()],
            pool_size: 4,
            token: None,
            ca: None,
            insecure: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            client_name: "velocity-rs".into(),
        }
    }
}

impl ClientBuilder {
    /// The server, `vdb://host[:port]` (port 2005 by default). In Kubernetes, the
    /// cluster's Service, which follows the primary.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder().endpoint("vdb://internal-v1:2005").build().await?;
    /// # Ok(()) }
    /// ```
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints = vec![endpoint.into()];
        self
    }

    /// Several nodes of one deployment (seeds), tried in turn when the one in use
    /// is unreachable: after its primary dies, the client finds the promoted
    /// replica among them (a replica redirects to its primary). Requests start
    /// with the first.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder()
    ///     .endpoints(["vdb://alpha-0.alpha-headless", "vdb://alpha-1.alpha-headless"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Number of connections (each pipelines many requests); at least 1.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder().pool_size(16).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }

    /// The auth token (otherwise `VDB_TOKEN`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let token = std::env::var("MY_VELOCITY_TOKEN").unwrap_or_default();
    /// let client = velocity_sdk::Client::builder().token(token).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trust the CA certificates in this PEM file (otherwise `VDB_CA`, then the system roots).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder().ca_file("/etc/velocity/ca.crt").build().await?;
    /// # Ok(()) }
    /// ```
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(tls::Ca::File(path.into()));
        self
    }

    /// Trust the CA certificates in this PEM text.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let pem = std::fs::read("/etc/velocity/ca.crt").unwrap_or_default();
    /// let client = velocity_sdk::Client::builder().ca_pem(pem).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(tls::Ca::Pem(pem.into()));
        self
    }

    /// Plaintext, for servers started with `--insecure` (local experiments only).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// // A server started with `velocity-engine --insecure`: no TLS, no token.
    /// let client = velocity_sdk::Client::builder().endpoint("vdb://127.0.0.1:2005").insecure().build().await?;
    /// # Ok(()) }
    /// ```
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Limit on TCP connect, TLS handshake and HELLO, each.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder()
    ///     .connect_timeout(std::time::Duration::from_secs(2))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Limit on waiting for one reply. A request past it fails ([`Error::Timeout`],
    /// or [`Error::OutcomeUnknown`] for a write) and its connection is replaced:
    /// the replies queued behind the missing one would wait as long.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder()
    ///     .request_timeout(std::time::Duration::from_millis(500))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// The name the server shows for these connections in logs and INFO.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder().client_name("checkout-service").build().await?;
    /// # Ok(()) }
    /// ```
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Opens every connection (so a wrong token, CA or address fails here) and returns the client.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// use velocity_sdk::{Client, ErrorCode};
    /// match Client::builder().token("wrong").build().await {
    ///     Ok(client) => drop(client),
    ///     Err(e) if e.code() == Some(ErrorCode::AuthFailed) => eprintln!("wrong token"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<Client> {
        if self.pool_size == 0 {
            return Err(Error::InvalidArgument("pool_size must be at least 1".into()));
        }
        let seeds = self
            .endpoints
            .iter()
            .map(|e| Endpoint::parse(e).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = seeds.first().cloned() else {
            return Err(Error::InvalidArgument("no endpoint given".into()));
        };
        let token = match self.token {
            Some(t) => t,
            None => std::env::var("VDB_TOKEN").unwrap_or_default(),
        };
        let tls = if self.insecure {
            None
        } else {
            let ca = self.ca.or_else(|| std::env::var_os("VDB_CA").map(tls::Ca::from_env));
            Some(tls::connector(ca.as_ref())?)
        };
        let opts = ConnectOptions {
            tls,
            token,
            client_name: self.client_name,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_frame_bytes: 1 << 30,
        };
        let inner = Arc::new(Inner {
            opts,
            seeds,
            endpoint: RwLock::new(first),
            slots: (0..self.pool_size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        });
        let client = Client {
            inner,
            consistency: Consistency::Linearizable,
        };
        let opened: Vec<_> = (0..client.inner.slots.len())
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move { c.inner.conn(i).await.map(|_| ()) })
            })
            .collect();
        for handle in opened {
            handle
                .await
                .map_err(|e| Error::Protocol(format!("connect task failed: {e}")))??;
        }
        Ok(client)
    }
}

#[derive(Default)]
struct Slot {
    conn: Mutex<Option<Arc<Conn>>>,
    opening: tokio::sync::Mutex<Backoff>,
    /// Requests of this client waiting on this slot (see [`Inner::pick`]).
    load: AtomicUsize,
}

/// Counts a request against its slot's load while it lives.
struct LoadGuard<'a>(&'a AtomicUsize);

impl<'a> LoadGuard<'a> {
    fn new(load: &'a AtomicUsize) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self(load)
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

struct Inner {
    opts: ConnectOptions,
    /// The endpoints given to the builder, tried in turn when the current one is unreachable.
    seeds: Vec<Arc<Endpoint>>,
    /// Where requests go now: a seed, or the primary a REDIRECT named.
    endpoint: RwLock<Arc<Endpoint>>,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Inner {
    fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Slot `i`'s connection when it is alive and to the current endpoint.
    fn current(&self, i: usize) -> Option<Arc<Conn>> {
        let endpoint = self.endpoint.read().unwrap_or_else(|p| p.into_inner());
        let guard = self.slots[i].conn.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|c| c.is_alive() && c.endpoint == **endpoint)
            .cloned()
    }

    /// The live connection of slot `i`, opening one (after the slot's backoff) if
    /// needed; an unreachable endpoint moves the pool to the next seed, and each
    /// seed is tried once before giving up.
    async fn conn(&self, i: usize) -> Result<Arc<Conn>> {
        if let Some(c) = self.current(i) {
            return Ok(c);
        }
        let mut backoff = self.slots[i].opening.lock().await;
        if let Some(c) = self.current(i) {
            return Ok(c);
        }
        if let Some(t) = backoff.not_before {
            tokio::time::sleep_until(t).await;
        }
        let (mut tries, mut limit) = (0, self.seeds.len());
        loop {
            let endpoint = self.endpoint();
            let err = match Conn::open(&endpoint, &self.opts).await {
                Ok(c) => {
                    *backoff = Backoff::default();
                    let c = Arc::new(c);
                    // The old connection (if any) lives on while requests on it finish.
                    *self.slots[i].conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => e,
            };
            // A primary a REDIRECT named is not one of the seeds: when it is unreachable
            // (it died, or lost its role) the seeds are tried at once, each once.
            if tries == 0 && !self.seeds.iter().any(|s| **s == *endpoint) {
                limit += 1;
            }
            tries += 1;
            // TLS and auth failures are configuration errors: the next seed would say the same.
            let unreachable = matches!(err, Error::Connect { .. });
            if unreachable {
                self.next_seed(&endpoint);
            }
            if !unreachable || tries >= limit {
                let delay = BACKOFF_FIRST
                    .saturating_mul(1 << backoff.failures.min(6))
                    .min(BACKOFF_MAX);
                backoff.failures += 1;
                backoff.not_before = Some(Instant::now() + delay);
                return Err(err);
            }
        }
    }

    /// Moves the pool from `tried` (if it is still the current endpoint) to the seed after it.
    fn next_seed(&self, tried: &Arc<Endpoint>) {
        let mut current = self.endpoint.write().unwrap_or_else(|p| p.into_inner());
        if **current != **tried {
            return; // another slot moved it already, or a REDIRECT did
        }
        let next = match self.seeds.iter().position(|s| **s == **tried) {
            Some(k) => (k + 1) % self.seeds.len(),
            None => 0, // a primary named by a REDIRECT: back to the seeds
        };
        if **current != *self.seeds[next] {
            *current = self.seeds[next].clone();
        }
    }

    /// The slot with the fewest requests waiting, ties broken round-robin.
    ///
    /// Least-loaded rather than plain round-robin: a connection slowed down by
    /// one request (a synchronous write waiting for replicas holds back the
    /// replies behind it) gets fewer new ones, and the callers woken by one
    /// connection's burst of replies send their next requests together on that
    /// connection, in one write, instead of one frame on each connection.
    fn pick(&self) -> usize {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (mut best, mut best_load) = (start, usize::MAX);
        let mut i = start;
        for _ in 0..n {
            let load = self.slots[i].load.load(Ordering::Relaxed);
            if load < best_load {
                (best, best_load) = (i, load);
                if load == 0 {
                    break;
                }
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        best
    }

    fn redirect(&self, primary: &str) -> Result<()> {
        let ep = Endpoint::parse(primary)?;
        let mut current = self.endpoint.write().unwrap_or_else(|p| p.into_inner());
        if **current != ep {
            *current = Arc::new(ep);
        }
        Ok(())
    }
}

/// Whether a request may be sent again after its connection broke.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Reads: retried once on a fresh connection.
    Read,
    /// Writes: never resent once sent; a broken connection is [`Error::OutcomeUnknown`].
    Write,
}

/// A Velocity client: a pool of TLS connections, each pipelining many requests.
///
/// Cheap to clone (clones share the pool) and safe to use from many tasks.
/// Each request goes to the connection with the fewest requests waiting (ties
/// round-robin); a dead connection is replaced on next use, with backoff between
/// failed attempts, moving to the next of several [`endpoints`](ClientBuilder::endpoints)
/// when one is unreachable. A `REDIRECT` from a replica is followed and the pool
/// stays on the primary. Reads are retried once after a connection failure;
/// writes are not (see [`Error::OutcomeUnknown`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), velocity_sdk::Error> {
/// use velocity_sdk::Client;
///
/// let client = Client::builder()
///   .endpoint("vdb://internal-v1")
///   .pool_size(16)
///   .build().await?;
/// client.set("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    consistency: Consistency,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint().to_string())
            .field("pool_size", &self.inner.slots.len())
            .finish()
    }
}

/// Options of [`Client::set_with`].
///
/// ```
/// use velocity_sdk::SetOptions;
/// let opts = SetOptions::new().ttl("2h").nx();
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SetOptions {
    ttl: Option<Ttl>,
    nx: bool,
    xx: bool,
}

impl SetOptions {
    /// No expiry, unconditional.
    ///
    /// ```
    /// let opts = velocity_sdk::SetOptions::new(); // no TTL, no condition: like `set`
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire after this TTL (`Duration` or `"2h"`, `"30s"`, `"1500ms"`, `"1h30m"`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use velocity_sdk::SetOptions;
    /// let a = SetOptions::new().ttl("1h30m");
    /// let b = SetOptions::new().ttl(Duration::from_millis(1500));
    /// ```
    pub fn ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = Some(ttl.into());
        self
    }

    /// Only if the key does not exist.
    ///
    /// ```
    /// let lock = velocity_sdk::SetOptions::new().nx().ttl("30s"); // take a lock only if free
    /// ```
    pub fn nx(mut self) -> Self {
        self.nx = true;
        self
    }

    /// Only if the key exists.
    ///
    /// ```
    /// let refresh = velocity_sdk::SetOptions::new().xx().ttl("2h"); // only sessions that exist
    /// ```
    pub fn xx(mut self) -> Self {
        self.xx = true;
        self
    }
}

fn ttl_ms(ttl: Option<&Ttl>) -> Result<i64> {
    ttl.map_or(Ok(0), Ttl::to_millis)
}

fn decode<'a, T>(b: &'a [u8]) -> Result<T::Inner>
where
    T: flatbuffers::Follow<'a> + flatbuffers::Verifiable + 'a,
{
    body::decode::<T>(b).map_err(|e| Error::Protocol(e.to_string()))
}

fn value_of(found: bool, kind: fbs::ValueKind, value: Option<flatbuffers::Vector<'_, u8>>) -> Result<Option<Value>> {
    if !found {
        return Ok(None);
    }
    Value::from_wire(kind.0, value.map(|v| v.bytes().to_vec()).unwrap_or_default()).map(Some)
}

impl Client {
    /// A builder; see [`ClientBuilder`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), velocity_sdk::Error> {
    /// let client = velocity_sdk::Client::builder()
    ///     .endpoint("vdb://127.0.0.1:2005")
    ///     .token("s3cr3t")
    ///     .ca_file("ca.crt")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A view of this client whose reads may be served by a replica (`STALE_OK`),
    /// possibly behind the primary. Writes are unaffected.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let maybe_old = client.stale_ok().get("k").await?;
    /// # Ok(()) }
    /// ```
    pub fn stale_ok(&self) -> Client {
        Client {
            inner: self.inner.clone(),
            consistency: Consistency::StaleOk,
        }
    }

    /// The endpoint requests currently go to (changes after a REDIRECT).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// println!("requests go to {}", client.endpoint()); // vdb://host:port
    /// # Ok(()) }
    /// ```
    pub fn endpoint(&self) -> String {
        self.inner.endpoint().to_string()
    }

    async fn call<R>(
        &self,
        op: Opcode,
        name: &'static str,
        kind: Kind,
        body: &[u8],
        read: impl Fn(&[u8]) -> Result<R>,
    ) -> Result<R> {
        // A replica answers writes and linearizable reads with REDIRECT naming the
        // primary; nothing was executed, so following it is always safe. A node
        // between roles redirects without a primary and a hint: wait and ask again.
        let flags = if kind == Kind::Read {
            velocity_proto::frame::flags(self.consistency)
        } else {
            0
        };
        let reply = match self.call_once(op, name, kind, flags, body).await {
            Ok(reply) => reply,
            // Boxed: the common path's future stays small (it is moved at every await).
            Err(err) => Box::pin(self.after_error(op, name, kind, flags, body, err)).await?,
        };
        read(&reply.body)
    }

    /// Follows REDIRECTs (and waits out a node between roles) after `err`.
    async fn after_error(
        &self,
        op: Opcode,
        name: &'static str,
        kind: Kind,
        flags: u8,
        body: &[u8],
        mut err: Error,
    ) -> Result<Reply> {
        let give_up = Instant::now() + FENCED_RETRY;
        let mut redirects = 0;
        loop {
            match &err {
                Error::Server {
                    code: ErrorCode::Redirect,
                    primary: Some(p),
                    ..
                } if redirects < MAX_REDIRECTS || Instant::now() < give_up => {
                    if redirects >= MAX_REDIRECTS {
                        tokio::time::sleep(REDIRECT_LOOP_PAUSE).await;
                    }
                    redirects += 1;
                    self.inner.redirect(p)?;
                }
                Error::Server {
                    code: ErrorCode::Redirect,
                    primary: None,
                    retry_after_ms,
                    ..
                } if *retry_after_ms > 0 && Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(u64::from(*retry_after_ms))).await;
                }
                _ => return Err(err),
            }
            err = match self.call_once(op, name, kind, flags, body).await {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
        }
    }

    /// One request on one connection: the reply (an error reply is an `Err`), with
    /// reads (and requests never sent) retried once on a fresh connection.
    async fn call_once(&self, op: Opcode, name: &'static str, kind: Kind, flags: u8, body: &[u8]) -> Result<Reply> {
        let i = self.inner.pick();
        let _load = LoadGuard::new(&self.inner.slots[i].load);
        let mut retried = false;
        loop {
            let conn = match self.inner.current(i) {
                Some(c) => c,
                // Boxed: opening a connection (TCP, TLS, HELLO) is a large future.
                None => Box::pin(self.inner.conn(i)).await?,
            };
            let failure = match conn.request(op, flags, body).await {
                Ok(reply) => {
                    check_reply(op, &reply)?;
                    return Ok(reply);
                }
                Err(f) => f,
            };
            match failure {
                // The connection's watchdog closed it: the replies behind the missing
                // one were stuck too; the pool opens a fresh connection.
                Failure::TimedOut if kind == Kind::Write => {
                    return Err(Error::OutcomeUnknown {
                        op: name,
                        reason: "request timed out".into(),
                    });
                }
                Failure::TimedOut => return Err(Error::Timeout { op: name }),
                // Never sent: safe to send again on a fresh connection, reads and writes alike.
                Failure::NotSent(_) if !retried => {}
                Failure::Lost(reason) if kind == Kind::Write => {
                    return Err(Error::OutcomeUnknown { op: name, reason });
                }
                Failure::Lost(_) if !retried => {}
                Failure::NotSent(reason) | Failure::Lost(reason) => {
                    return Err(Error::ConnectionLost { op: name, reason });
                }
            }
            retried = true;
        }
    }

    // -- single key ------------------------------------------------------------

    /// The value of `key` with the type it was stored as, or `None`.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// if let Some(v) = client.get("user:1").await? {
    ///     println!("{:?}", v.as_str());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let b = body::key_request(key.as_ref());
        self.call(Opcode::GET, "GET", Kind::Read, &b, |r| {
            let g = decode::<fbs::GetResponse>(r)?;
            value_of(g.found(), g.kind(), g.value())
        })
        .await
    }

    /// Stores `value` (`&str`, `String`, `Vec<u8>`, `&[u8]`, `i64`, `serde_json::Value`, ...)
    /// without expiry; returns `true` (unconditional writes always apply).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// client.set("name", "Ada").await?;
    /// client.set("visits", 41).await?;
    /// client.set("session", serde_json::json!({"active": true})).await?;
    /// client.set("blob", vec![0u8, 1, 2]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<bool> {
        self.set_with(key, value, SetOptions::new()).await
    }

    /// Stores `value` with a TTL and/or a condition; returns whether it was written
    /// (`false` when `nx`/`xx` did not hold).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// use velocity_sdk::SetOptions;
    /// client.set_with("session:0xF1", "on", SetOptions::new().ttl("2h")).await?;
    /// let first = client.set_with("lock", "me", SetOptions::new().nx().ttl("30s")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_with(&self, key: impl AsRef<[u8]>, value: impl Into<Value>, opts: SetOptions) -> Result<bool> {
        if opts.nx && opts.xx {
            return Err(Error::InvalidArgument("nx and xx exclude each other".into()));
        }
        let value = value.into();
        let cond = if opts.nx {
            fbs::SetCondition::IfAbsent
        } else if opts.xx {
            fbs::SetCondition::IfPresent
        } else {
            fbs::SetCondition::Always
        };
        let b = body::set_request(
            key.as_ref(),
            &value.to_wire(),
            value.kind(),
            ttl_ms(opts.ttl.as_ref())?,
            cond,
        );
        self.call(Opcode::SET, "SET", Kind::Write, &b, |r| {
            Ok(decode::<fbs::SetResponse>(r)?.applied())
        })
        .await
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let existed = client.delete("session:0xF1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let b = body::key_request(key.as_ref());
        self.call(Opcode::DEL, "DEL", Kind::Write, &b, read_bool).await
    }

    /// Whether `key` exists.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// if client.exists("session:0xF1").await? {
    ///     println!("logged in");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let b = body::key_request(key.as_ref());
        self.call(Opcode::EXISTS, "EXISTS", Kind::Read, &b, read_bool).await
    }

    /// Atomically adds `by` (may be negative) and returns the new value; a missing key counts as 0.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let n: i64 = client.incr("counters:req_total", 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn incr(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64> {
        let b = body::incr_request(key.as_ref(), by);
        self.call(Opcode::INCR, "INCR", Kind::Write, &b, |r| {
            Ok(decode::<fbs::IncrResponse>(r)?.value())
        })
        .await
    }

    /// Atomically subtracts `by` and returns the new value.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let left: i64 = client.decr("stock:sku-42", 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decr(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64> {
        let by = by
            .checked_neg()
            .ok_or_else(|| Error::InvalidArgument("decr by i64::MIN".into()))?;
        self.incr(key, by).await
    }

    /// Sets an expiry on `key`; returns `false` if the key does not exist.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// client.expire("session:0xF1", "30m").await?;
    /// client.expire("cache:home", std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl: impl Into<Ttl>) -> Result<bool> {
        let b = body::expire_request(key.as_ref(), ttl.into().to_millis()?);
        self.call(Opcode::EXPIRE, "EXPIRE", Kind::Write, &b, read_bool).await
    }

    /// Removes the expiry of `key`; returns whether there was one.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let had_expiry = client.persist("session:0xF1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let b = body::key_request(key.as_ref());
        self.call(Opcode::PERSIST, "PERSIST", Kind::Write, &b, read_bool).await
    }

    /// Milliseconds left: -1 when the key has no expiry, -2 when it does not exist.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// match client.pttl("session:0xF1").await? {
    ///     -2 => println!("no such key"),
    ///     -1 => println!("no expiry"),
    ///     ms => println!("{ms} ms left"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn pttl(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let b = body::key_request(key.as_ref());
        self.call(Opcode::TTL, "TTL", Kind::Read, &b, |r| {
            Ok(decode::<fbs::TtlResponse>(r)?.ttl_ms())
        })
        .await
    }

    /// Time left, or `None` when the key is missing or has no expiry.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// if let Some(left) = client.ttl("session:0xF1").await? {
    ///     println!("expires in {left:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>> {
        let ms = self.pttl(key).await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    /// Writes `value` only if the current value equals `expected` (kind and bytes),
    /// or with `expected = None` only if the key is absent; returns whether it was written.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let created = client.cas("cfg", None, "v1").await?;
    /// let updated = client.cas("cfg", Some("v1".into()), "v2").await?;
    /// # Ok(()) }
    /// ```
    pub async fn cas(&self, key: impl AsRef<[u8]>, expected: Option<Value>, value: impl Into<Value>) -> Result<bool> {
        self.cas_inner(key.as_ref(), expected, value.into(), None).await
    }

    /// [`Client::cas`] with a TTL on the new value.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let taken = client.cas_with_ttl("lock:job-7", None, "worker-3", "30s").await?;
    /// # Ok(()) }
    /// ```
    pub async fn cas_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<Value>,
        value: impl Into<Value>,
        ttl: impl Into<Ttl>,
    ) -> Result<bool> {
        self.cas_inner(key.as_ref(), expected, value.into(), Some(ttl.into()))
            .await
    }

    async fn cas_inner(&self, key: &[u8], expected: Option<Value>, value: Value, ttl: Option<Ttl>) -> Result<bool> {
        let ttl_ms = ttl_ms(ttl.as_ref())?;
        let expected_bytes = expected.as_ref().map(Value::to_wire);
        let new = value.to_wire();
        let b = body::cas_request(&Cas {
            key,
            expected: expected_bytes.as_deref().unwrap_or_default(),
            expected_kind: expected.as_ref().map_or(fbs::ValueKind::Bytes, Value::kind),
            expect_absent: expected.is_none(),
            value: &new,
            kind: value.kind(),
            ttl_ms,
        });
        self.call(Opcode::CAS, "CAS", Kind::Write, &b, |r| {
            Ok(decode::<fbs::CasResponse>(r)?.applied())
        })
        .await
    }

    // -- multi key --------------------------------------------------------------

    /// The values of `keys`, in order (`None` for missing keys).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let values = client.mget(["a", "b"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mget<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<Vec<Option<Value>>> {
        let keys: Vec<K> = keys.into_iter().collect();
        let b = body::mget_request(&keys);
        let want = keys.len();
        self.call(Opcode::MGET, "MGET", Kind::Read, &b, |r| {
            let m = decode::<fbs::MGetResponse>(r)?;
            let out = m
                .entries()
                .iter()
                .flatten()
                .map(|e| value_of(e.found(), e.kind(), e.value()))
                .collect::<Result<Vec<_>>>()?;
            if out.len() != want {
                return Err(Error::Protocol(format!(
                    "MGET of {want} keys answered with {} entries",
                    out.len()
                )));
            }
            Ok(out)
        })
        .await
    }

    /// Writes every pair atomically: all of them or, on error, none.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// client.mset([("a", 1), ("b", 2)]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mset<K: AsRef<[u8]>, V: Into<Value>>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        self.mset_inner(pairs, None).await
    }

    /// [`Client::mset`] with the same TTL on every entry.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// client.mset_with_ttl([("cache:a", "1"), ("cache:b", "2")], "5m").await?;
    /// # Ok(()) }
    /// ```
    pub async fn mset_with_ttl<K: AsRef<[u8]>, V: Into<Value>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        self.mset_inner(pairs, Some(ttl.into())).await
    }

    async fn mset_inner<K: AsRef<[u8]>, V: Into<Value>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        ttl: Option<Ttl>,
    ) -> Result<()> {
        let ttl_ms = ttl_ms(ttl.as_ref())?;
        let owned: Vec<(K, Value)> = pairs.into_iter().map(|(k, v)| (k, v.into())).collect();
        let wire: Vec<_> = owned.iter().map(|(_, v)| v.to_wire()).collect();
        let entries: Vec<EntryRef<'_>> = owned
            .iter()
            .zip(&wire)
            .map(|((k, v), w)| EntryRef {
                key: k.as_ref(),
                kind: v.kind(),
                value: w,
                ttl_ms,
            })
            .collect();
        let b = body::mset_request(&entries);
        self.call(Opcode::MSET, "MSET", Kind::Write, &b, |r| {
            decode::<fbs::BoolResponse>(r).map(|_| ())
        })
        .await
    }

    /// Every key starting with `prefix`, in byte order, fetched 100 at a time, as a
    /// [`Stream`](futures_core::Stream) (or with [`Scan::next_key`]).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let mut keys = client.scan("user:");
    /// while let Some(key) = keys.next_key().await? {
    ///     println!("{}", String::from_utf8_lossy(&key));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn scan(&self, prefix: impl AsRef<[u8]>) -> Scan {
        self.scan_with_count(prefix, 100)
    }

    /// [`Client::scan`] with `count` keys per page (1..=10 000).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let keys = client.scan_with_count("user:", 1000).collect_keys().await?;
    /// # Ok(()) }
    /// ```
    pub fn scan_with_count(&self, prefix: impl AsRef<[u8]>, count: u32) -> Scan {
        Scan {
            client: self.clone(),
            prefix: prefix.as_ref().to_vec(),
            cursor: Some(Vec::new()),
            count,
            page: std::collections::VecDeque::new(),
            fetching: None,
            last_cursor: Vec::new(),
        }
    }

    async fn scan_page(self, prefix: Vec<u8>, cursor: Vec<u8>, count: u32) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
        let b = body::scan_request(&prefix, &cursor, count);
        self.call(Opcode::SCAN, "SCAN", Kind::Read, &b, |r| {
            let s = decode::<fbs::ScanResponse>(r)?;
            let keys = s
                .keys()
                .iter()
                .flatten()
                .map(|k| k.key().map(|v| v.bytes().to_vec()).unwrap_or_default())
                .collect();
            Ok((keys, s.next_cursor().map(|v| v.bytes().to_vec()).unwrap_or_default()))
        })
        .await
    }

    // -- admin ------------------------------------------------------------------------

    /// Round trip to the server; returns the echoed payload.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// assert_eq!(client.ping("hello").await?, b"hello");
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self, payload: impl AsRef<[u8]>) -> Result<Vec<u8>> {
        let b = body::ping_request(payload.as_ref());
        self.call(Opcode::PING, "PING", Kind::Read, &b, |r| {
            Ok(decode::<fbs::PingResponse>(r)?
                .payload()
                .map(|v| v.bytes().to_vec())
                .unwrap_or_default())
        })
        .await
    }

    /// The server's INFO document, or one top-level `section` of it (`None`: all).
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let info = client.info(Some("replication")).await?;
    /// println!("role: {}", info["replication"]["role"]);
    /// # Ok(()) }
    /// ```
    pub async fn info(&self, section: Option<&str>) -> Result<serde_json::Value> {
        let b = body::info_request(section.unwrap_or(""));
        self.call(Opcode::INFO, "INFO", Kind::Read, &b, |r| {
            let text = decode::<fbs::InfoResponse>(r)?.json().unwrap_or("{}");
            serde_json::from_str(text).map_err(|e| Error::Protocol(format!("INFO is not JSON: {e}")))
        })
        .await
    }
}

fn read_bool(r: &[u8]) -> Result<bool> {
    Ok(decode::<fbs::BoolResponse>(r)?.value())
}

type PageFuture = Pin<Box<dyn Future<Output = Result<(Vec<Vec<u8>>, Vec<u8>)>> + Send>>;

/// The keys of a [`Client::scan`], page by page. A [`Stream`](futures_core::Stream)
/// of `Result<Vec<u8>>`; it ends after the first error.
///
/// ```no_run
/// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
/// // As a Stream (futures::StreamExt::next), or without one:
/// let mut scan = client.scan("user:");
/// while let Some(key) = scan.next_key().await? {
///     println!("{}", String::from_utf8_lossy(&key));
/// }
/// # Ok(()) }
/// ```
#[must_use = "a scan does nothing until polled"]
pub struct Scan {
    client: Client,
    prefix: Vec<u8>,
    /// The cursor of the next page; `None` once the last page arrived.
    cursor: Option<Vec<u8>>,
    count: u32,
    page: std::collections::VecDeque<Vec<u8>>,
    fetching: Option<PageFuture>,
    /// The cursor the page being fetched starts after.
    last_cursor: Vec<u8>,
}

impl Scan {
    /// The next key, or `None` at the end.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let first = client.scan("user:").next_key().await?; // None when no key has the prefix
    /// # Ok(()) }
    /// ```
    pub async fn next_key(&mut self) -> Result<Option<Vec<u8>>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next_key(cx))
            .await
            .transpose()
    }

    /// Collects every remaining key.
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// let all: Vec<Vec<u8>> = client.scan("order:").collect_keys().await?;
    /// # Ok(()) }
    /// ```
    pub async fn collect_keys(mut self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(k) = self.next_key().await? {
            out.push(k);
        }
        Ok(out)
    }

    fn poll_next_key(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<u8>>>> {
        loop {
            if let Some(k) = self.page.pop_front() {
                return Poll::Ready(Some(Ok(k)));
            }
            if self.fetching.is_none() {
                let Some(cursor) = self.cursor.take() else {
                    return Poll::Ready(None);
                };
                let fut = self
                    .client
                    .clone()
                    .scan_page(self.prefix.clone(), cursor.clone(), self.count);
                self.last_cursor = cursor;
                self.fetching = Some(Box::pin(fut));
            }
            let Some(fut) = self.fetching.as_mut() else {
                return Poll::Ready(None);
            };
            let result = match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            self.fetching = None;
            let prev = std::mem::take(&mut self.last_cursor);
            match result {
                Err(e) => {
                    self.cursor = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok((keys, next)) => {
                    // Keys come in byte order strictly after the cursor; a cursor that does
                    // not advance (a broken server) would scan forever.
                    let in_order = keys.windows(2).all(|w| w[0] < w[1]) && keys.first().is_none_or(|k| *k > prev);
                    if !in_order || (!next.is_empty() && next <= prev) {
                        self.cursor = None;
                        return Poll::Ready(Some(Err(Error::Protocol("SCAN page out of order".into()))));
                    }
                    self.page.extend(keys);
                    self.cursor = (!next.is_empty()).then_some(next);
                }
            }
        }
    }
}

impl futures_core::Stream for Scan {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_key(cx)
    }
}
