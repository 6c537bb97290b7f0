//! What the Python shell hands the core at start (config.py's EngineSettings,
//! already validated there, plus the credentials and TLS files it resolved).

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Role;
use crate::lsm_store::LsmSettings;
use crate::snapshot::SnapshotLimits;

/// Where the keyspace lives (`--storage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageSettings {
    /// Volatile (`--storage memory`, tests).
    #[default]
    Memory,
    /// Durable, in `DATA_DIR/storage` (`--storage lsm`).
    Lsm(LsmSettings),
}

/// The certificate chain and key (PEM) the listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Start-up settings of the data plane. Only `max_connections` and the storage's
/// `appendfsync` change later (see [`crate::server::Server::set_max_connections`],
/// [`crate::store::Store::set_appendfsync`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// None: plaintext (`--insecure`).
    pub tls: Option<TlsFiles>,
    /// Empty with `insecure`: no HELLO needed, every opcode allowed.
    pub tokens: Vec<(Role, String)>,
    pub insecure: bool,
    pub node_id: String,
    pub version: String,
    pub max_frame_bytes: u64,
    pub max_key_bytes: u32,
    pub max_value_bytes: u32,
    pub max_connections: usize,
    pub max_unauthenticated: usize,
    pub frame_timeout: Duration,
    pub handshake_timeout: Duration,
    pub write_buffer_high_bytes: usize,
    pub active_expiry_hz: f64,
    pub active_expiry_budget: Duration,
    /// Worker threads; 0: one per CPU this process may run on.
    pub threads: usize,
    pub backlog: u32,
    pub storage: StorageSettings,
    /// DATA_DIR (snapshot files go to DATA_DIR/storage/snapshots); None: no
    /// directory, SNAPSHOT_BEGIN is refused.
    pub data_dir: Option<PathBuf>,
    /// `snapshot_*` bounds (config.py).
    pub snapshot: SnapshotLimits,
    /// The node's epoch (its replication state file's, 1 for a new node); writes
    /// are logged in the larger of it and the log's newest epoch.
    pub epoch: u64,
    /// Replication (role at start, sync mode, peers' credentials).
    pub repl: crate::replication::ReplSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            tls: None,
            tokens: Vec::new(),
            insecure: true,
            node_id: "native".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            max_frame_bytes: velocity_proto::frame::DEFAULT_MAX_FRAME_BYTES,
            max_key_bytes: velocity_proto::frame::DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: velocity_proto::frame::DEFAULT_MAX_VALUE_BYTES,
            max_connections: 10_000,
            max_unauthenticated: 64,
            frame_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            write_buffer_high_bytes: 4 * 1024 * 1024,
            active_expiry_hz: 10.0,
            active_expiry_budget: Duration::from_millis(1),
            threads: 0,
            backlog: 1024,
            storage: StorageSettings::Memory,
            data_dir: None,
            snapshot: SnapshotLimits::default(),
            epoch: 1,
            repl: crate::replication::ReplSettings::default(),
        }
    }
}

impl Settings {
    /// The worker threads to run: `threads`, or the CPUs this process may use
    /// (sched affinity and cgroup quota, as `available_parallelism` reads them).
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
