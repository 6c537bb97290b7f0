//! The data plane's threads: N event loops sharing one keyspace.
//!
//! Threading model: one worker thread per CPU the process may use (or
//! `Settings::threads`), each running its own single-threaded tokio runtime
//! (epoll, timers) and a `LocalSet` of connection tasks. A connection lives on
//! one worker for its whole life: its reads, requests and writes never cross a
//! thread and never take a lock of the runtime. Worker 0 also accepts and hands
//! each new socket to the workers in turn, and runs the active expiry cycle.
//! All workers share the [`Keyspace`] (sharded store, striped key locks: see
//! keyspace.rs and memory.rs), so any connection reaches any key and
//! operations on one key stay linearizable whichever threads serve them.
//!
//! Why not one multi-threaded runtime: work stealing moves a connection's task
//! between threads and adds cross-thread wake-ups to every request; with one
//! connection per task and many connections per worker, a fixed assignment
//! balances as well and keeps each request on one core's caches.
//!
//! Shutdown: [`Server::stop`] drains (the listener closes; authenticated
//! connections get the replies they are owed and close, ones still on probation
//! are dropped, one accepted meanwhile gets `SHUTTING_DOWN`), waits up to the
//! grace period for the connection tasks to end, then ends the workers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::LocalSet;

use crate::auth::{AuthThrottle, Credentials};
use crate::conn::{Conn, Worker};
use crate::keyspace::{expiry_cycle, Keyspace};
use crate::lsm_store::LsmStore;
use crate::memory::MemoryStore;
use crate::settings::{Settings, StorageSettings};
use crate::stats::{Totals, WorkerStats};
use crate::store::Store;

/// Connection counters shared by all workers (touched per connection, not per request).
#[derive(Default)]
pub struct Counters {
    connections: AtomicUsize,
    unauthenticated: AtomicUsize,
    accepted_total: AtomicU64,
    rejected_total: AtomicU64,
    auth_failures: AtomicU64,
    /// Connection tasks alive (any state): what a drain waits for.
    live: AtomicUsize,
}

impl Counters {
    /// Joins probation unless `max` connections already wait for HELLO.
    pub fn enter_probation(&self, max: usize) -> bool {
        self.unauthenticated
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    pub fn leave_probation(&self) {
        self.unauthenticated.fetch_sub(1, Ordering::AcqRel);
    }

    /// Takes a client slot unless `max` are in use.
    pub fn take_slot(&self, max: usize) -> bool {
        let ok = self
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        if ok {
            self.accepted_total.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn release_slot(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn rejected(&self) {
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted_total.load(Ordering::Relaxed)
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected_total.load(Ordering::Relaxed)
    }

    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

/// Counts a connection task while it exists.
struct LiveGuard(Arc<Shared>);

impl LiveGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.counters.live.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.counters.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Everything the workers share.
pub struct Shared {
    pub settings: Settings,
    max_connections: AtomicUsize,
    pub keyspace: Keyspace,
    /// None: `--insecure` (no HELLO needed).
    pub credentials: Option<Credentials>,
    pub throttle: AuthThrottle,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub counters: Counters,
    pub started: Instant,
    pub port: u16,
    pub workers: Vec<Arc<WorkerStats>>,
    draining: AtomicBool,
    info_sections: RwLock<Map<String, Value>>,
    /// SNAPSHOT_BEGIN/READ (None: no data directory to write them to).
    pub snapshots: Option<crate::snapshot::Exporter>,
    /// Role, epoch, feeds and follower (replication/mod.rs).
    pub repl: Arc<crate::replication::Replication>,
}

impl Shared {
    /// The shared state of a data plane over `store` with `workers` worker
    /// threads, listening on `port` (what [`Server::start`] builds; tests drive
    /// connections over in-memory streams with it).
    pub fn new(
        settings: Settings,
        store: Box<dyn crate::store::Store>,
        port: u16,
        workers: usize,
    ) -> Result<Self, StartError> {
        let tls = match &settings.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                &files.cert,
                &files.key,
            )?)),
            None => None,
        };
        let credentials = (!settings.insecure).then(|| Credentials::new(settings.tokens.clone()));
        let repl = Arc::new(
            crate::replication::Replication::new(settings.repl.clone())
                .map_err(|e| StartError::Runtime(std::io::Error::other(e)))?,
        );
        let keyspace = Keyspace::new(store);
        keyspace.raise_epoch(settings.epoch);
        keyspace.set_hook(repl.clone());
        Ok(Self {
            max_connections: AtomicUsize::new(settings.max_connections),
            keyspace,
            repl,
            credentials,
            throttle: AuthThrottle::default(),
            tls,
            counters: Counters::default(),
            started: Instant::now(),
            port,
            workers: (0..workers.max(1)).map(|_| Arc::new(WorkerStats::default())).collect(),
            draining: AtomicBool::new(false),
            info_sections: RwLock::new(Map::new()),
            snapshots: settings.data_dir.as_deref().map(|d| {
                crate::snapshot::Exporter::new(Arc::new(velocity_lsm::fs::RealFs), d, settings.snapshot.clone())
            }),
            settings,
        })
    }

    /// The live connection limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections.load(Ordering::Relaxed)
    }

    /// Every worker's request counters, summed.
    pub fn totals(&self) -> Totals {
        Totals::collect(self.workers.iter().map(|w| &**w))
    }

    /// INFO sections the Python shell owns (`config`, `replication`).
    pub fn info_sections(&self) -> Map<String, Value> {
        self.info_sections.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot start the data plane: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Storage(#[from] crate::lsm_store::OpenError),
}

/// Opens the configured storage (recovery happens here, before the port opens).
pub fn open_store(s: &StorageSettings, backlog_bytes: usize) -> Result<Box<dyn Store>, StartError> {
    Ok(match s {
        StorageSettings::Memory => Box::new(MemoryStore::with_backlog(backlog_bytes)),
        StorageSettings::Lsm(lsm) => Box::new(LsmStore::open(lsm)?),
    })
}

/// A running data plane.
pub struct Server {
    shared: Arc<Shared>,
    drain_tx: watch::Sender<bool>,
    stop_tx: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, StartError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| StartError::Bind {
            addr: format!("{host}:{port}"),
            source: e,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr: format!("{host}:{port}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })
}

fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(backlog)
}

impl Server {
    /// Opens the storage, binds the listener and starts the workers; returns once
    /// requests are served (the Python engine's order: storage, then listeners).
    pub fn start(settings: Settings) -> Result<Self, StartError> {
        let store = open_store(&settings.storage, settings.repl.backlog_bytes)?;
        let n = settings.worker_threads();
        // Worker 0's runtime is built here so that the listener binds (and fails) synchronously.
        let rt0 = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let addr = resolve(&settings.host, settings.port)?;
        let listener = {
            let _g = rt0.enter();
            listen(addr, settings.backlog).map_err(|e| StartError::Bind {
                addr: addr.to_string(),
                source: e,
            })?
        };
        let port = listener.local_addr().map_err(StartError::Runtime)?.port();
        let shared = Arc::new(Shared::new(settings, store, port, n)?);
        shared.repl.start(&shared);
        let (drain_tx, drain_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            senders.push(tx);
            receivers.push(rx);
        }
        let mut threads = Vec::with_capacity(n);
        let mut rt0 = Some(rt0);
        let mut listener = Some(listener);
        for (i, rx) in receivers.into_iter().enumerate() {
            let rt = match rt0.take() {
                Some(rt) => rt,
                None => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(StartError::Runtime)?,
            };
            let ctx = WorkerInit {
                index: i,
                shared: shared.clone(),
                stats: shared.workers[i].clone(),
                drain: drain_rx.clone(),
                stop: stop_rx.clone(),
                incoming: rx,
                acceptor: listener.take().map(|l| (l, senders.clone())),
            };
            let handle = std::thread::Builder::new()
                .name(format!("velocity-worker-{i}"))
                .spawn(move || worker_main(rt, ctx))
                .map_err(StartError::Runtime)?;
            threads.push(handle);
        }
        Ok(Self {
            shared,
            drain_tx,
            stop_tx,
            threads,
        })
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Applies the live `max_connections` (checked at each HELLO; closes nobody).
    pub fn set_max_connections(&self, n: usize) {
        self.shared.max_connections.store(n, Ordering::Relaxed);
    }

    /// Replaces the INFO sections the Python shell owns.
    pub fn set_info_sections(&self, sections: Map<String, Value>) {
        if let Ok(mut m) = self.shared.info_sections.write() {
            *m = sections;
        }
    }

    /// Drains, waits up to `grace` for the connections, then ends the workers.
    /// Returns the connection tasks that had to be cut off.
    pub fn stop(mut self, grace: Duration) -> usize {
        self.shared.draining.store(true, Ordering::Release);
        let _ = self.drain_tx.send(true);
        let deadline = Instant::now() + grace;
        while self.shared.counters.live() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let cut = self.shared.counters.live();
        self.shared.repl.shutdown();
        let _ = self.stop_tx.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(x) = &self.shared.snapshots {
            x.close(); // after the workers: no BEGIN can start another writer
        }
        let _ = self.shared.keyspace.store().close();
        cut
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.drain_tx.send(true);
            let _ = self.stop_tx.send(true);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

type Incoming = (std::net::TcpStream, SocketAddr);

struct WorkerInit {
    index: usize,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    drain: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    acceptor: Option<(TcpListener, Vec<mpsc::UnboundedSender<Incoming>>)>,
}

fn worker_main(rt: tokio::runtime::Runtime, init: WorkerInit) {
    let WorkerInit {
        index,
        shared,
        stats,
        drain,
        mut stop,
        mut incoming,
        acceptor,
    } = init;
    let worker = Rc::new(Worker {
        shared: shared.clone(),
        stats,
        drain: drain.clone(),
    });
    let local = LocalSet::new();
    local.block_on(&rt, async move {
        if let Some((listener, senders)) = acceptor {
            tokio::task::spawn_local(accept_loop(listener, senders, worker.clone(), drain.clone()));
        }
        if index == 0 {
            tokio::task::spawn_local(expiry_loop(shared.clone(), drain.clone()));
        }
        let mut intake_open = true;
        loop {
            tokio::select! {
                got = incoming.recv(), if intake_open => match got {
                    Some((sock, peer)) => match TcpStream::from_std(sock) {
                        Ok(sock) => spawn_conn(worker.clone(), sock, peer),
                        Err(e) => eprintln!("velocity-core: cannot adopt a connection from {peer}: {e}"),
                    },
                    // The acceptor is gone (draining): wait for the end.
                    None => intake_open = false,
                },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    });
    // Dropping the LocalSet ends every connection task still running (cut off).
    drop(local);
    drop(rt);
}

async fn accept_loop(
    listener: TcpListener,
    senders: Vec<mpsc::UnboundedSender<Incoming>>,
    me: Rc<Worker>,
    mut drain: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let i = next % senders.len();
                    next = next.wrapping_add(1);
                    if i == 0 {
                        spawn_conn(me.clone(), sock, peer);
                    } else if let Ok(std_sock) = sock.into_std() {
                        let _ = senders[i].send((std_sock, peer));
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: back off a little, keep serving.
                    eprintln!("velocity-core: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = drain.wait_for(|d| *d) => break,
        }
    }
    // Dropping the listener closes the port; dropping the senders ends the workers' intake.
}

fn spawn_conn(w: Rc<Worker>, sock: TcpStream, peer: SocketAddr) {
    tokio::task::spawn_local(serve(w, sock, peer));
}

async fn serve(w: Rc<Worker>, sock: TcpStream, peer: SocketAddr) {
    let _live = LiveGuard::new(w.shared.clone());
    let _ = sock.set_nodelay(true);
    match w.shared.tls.clone() {
        Some(acceptor) => {
            // A connection still in the TLS handshake at the timeout is simply closed.
            let hs = w.shared.settings.handshake_timeout;
            if let Ok(Ok(tls)) = tokio::time::timeout(hs, acceptor.accept(sock)).await {
                Conn::new(w, tls, peer).run().await;
            }
        }
        None => Conn::new(w, sock, peer).run().await,
    }
}

async fn expiry_loop(shared: Arc<Shared>, mut drain: watch::Receiver<bool>) {
    let s = &shared.settings;
    let period = Duration::from_secs_f64(1.0 / s.active_expiry_hz.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                expiry_cycle(&shared.keyspace, s.active_expiry_budget);
            }
            _ = drain.wait_for(|d| *d) => return,
        }
    }
}
