//! `velocity_engine._core`: the boundary between the Python shell and the core.
//!
//! A short list of calls (docs/engine.md, "The Python <-> core boundary"; the
//! typed surface is engine/velocity_engine/_core.pyi):
//!
//! - `start(settings: dict) -> Core`: open the storage, bind and serve (OSError
//!   when the port, the TLS files or the storage directory cannot be used,
//!   `StorageCorruption(path, offset, reason)` when recovery refuses the data,
//!   ValueError for a bad setting);
//! - `Core.port`; `Core.stop(grace_s) -> int` (drain, then end; the count of
//!   connections cut off); `Core.stats() -> dict` (counters for /metrics);
//!   (its `snapshots` entry: the SNAPSHOT_BEGIN/READ figures);
//!   `Core.set_live_settings(dict)` (`max_connections`, `appendfsync`);
//!   `Core.set_info_sections(json)`;
//!   `Core.info(section) -> str` (the INFO JSON); replication:
//!   `Core.promote(min_epoch) -> (epoch, seq)`, `Core.replica_of(primary,
//!   epoch) -> epoch`, `Core.replication_state() -> str` (JSON),
//!   `Core.role()`, `Core.replica_links()`; lease mode (`lease_name` set):
//!   `Core.admin_next(timeout_s)` / `admin_reply` / `admin_fail` (PROMOTE and
//!   REPLICA_OF answered by the shell), `Core.lease_renewed(remaining_s)`,
//!   `Core.set_handover(target)`, `Core.set_lease_info(json)`, `Core.fence`;
//! - `check_dir(storage_dir, repair) -> (ok, lines)`: `velocity-engine check`
//!   of a directory the native engine wrote (velocity-lsm's checker);
//! - `restore_snapshot(snapshot, storage_dir) -> int | None`: `--restore-from`.
//!
//! No Python runs per request: the worker threads never take the GIL. Calls
//! that may block (start, stop) release it.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::conversion::FromPyObjectOwned;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::auth::Role;
use crate::lsm_store::{LsmSettings, OpenError};
use crate::server::{Server, StartError};
use crate::settings::{Settings, StorageSettings, TlsFiles};

create_exception!(
    _core,
    StorageCorruption,
    PyException,
    "The storage's bytes fail a checksum or do not parse (args: path, offset, reason)."
);
use crate::stats::NB;

fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>().map_err(|e| {
            let e: PyErr = e.into();
            PyValueError::new_err(format!("setting {key}: {e}"))
        })?)),
        _ => Ok(None),
    }
}

/// Overwrites `slot` with `key`'s value when the dict has one (the default stays otherwise).
fn set<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str, slot: &mut T) -> PyResult<()> {
    if let Some(v) = get::<T>(d, key)? {
        *slot = v;
    }
    Ok(())
}

fn settings_from(d: &Bound<'_, PyDict>) -> PyResult<Settings> {
    let mut s = Settings::default();
    set(d, "host", &mut s.host)?;
    set(d, "port", &mut s.port)?;
    let cert = get::<String>(d, "tls_cert")?;
    let key = get::<String>(d, "tls_key")?;
    s.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, None) => None,
        _ => return Err(PyValueError::new_err("tls_cert and tls_key go together")),
    };
    s.insecure = get::<bool>(d, "insecure")?.unwrap_or(false);
    if let Some(tokens) = get::<Vec<(String, String)>>(d, "tokens")? {
        s.tokens = tokens
            .into_iter()
            .map(|(role, token)| {
                Role::from_name(&role)
                    .map(|r| (r, token))
                    .ok_or_else(|| PyValueError::new_err(format!("unknown role {role:?}")))
            })
            .collect::<PyResult<_>>()?;
    }
    if !s.insecure && s.tokens.is_empty() {
        return Err(PyValueError::new_err("auth is on but no token was given"));
    }
    set(d, "node_id", &mut s.node_id)?;
    set(d, "version", &mut s.version)?;
    set(d, "max_frame_bytes", &mut s.max_frame_bytes)?;
    set(d, "max_key_bytes", &mut s.max_key_bytes)?;
    set(d, "max_value_bytes", &mut s.max_value_bytes)?;
    set(d, "max_connections", &mut s.max_connections)?;
    set(d, "max_unauthenticated", &mut s.max_unauthenticated)?;
    let secs = |v: f64, name: &str| {
        Duration::try_from_secs_f64(v).map_err(|_| PyValueError::new_err(format!("setting {name}: {v}")))
    };
    if let Some(v) = get::<f64>(d, "frame_timeout_s")? {
        s.frame_timeout = secs(v, "frame_timeout_s")?;
    }
    if let Some(v) = get::<f64>(d, "handshake_timeout_s")? {
        s.handshake_timeout = secs(v, "handshake_timeout_s")?;
    }
    set(d, "write_buffer_high_bytes", &mut s.write_buffer_high_bytes)?;
    set(d, "active_expiry_hz", &mut s.active_expiry_hz)?;
    if let Some(v) = get::<f64>(d, "active_expiry_budget_ms")? {
        s.active_expiry_budget = secs(v / 1000.0, "active_expiry_budget_ms")?;
    }
    set(d, "threads", &mut s.threads)?;
    set(d, "epoch", &mut s.epoch)?;
    s.data_dir = get::<std::path::PathBuf>(d, "data_dir")?;
    set(d, "snapshot_max_files", &mut s.snapshot.max_files)?;
    set(d, "snapshot_max_bytes", &mut s.snapshot.max_bytes)?;
    set(d, "snapshot_min_free_bytes", &mut s.snapshot.min_free_bytes)?;
    if let Some(v) = get::<f64>(d, "snapshot_idle_s")? {
        s.snapshot.idle = secs(v, "snapshot_idle_s")?;
    }
    s.storage = match get::<String>(d, "storage")?.as_deref() {
        None | Some("memory") => StorageSettings::Memory,
        Some("lsm") => {
            let data_dir = get::<std::path::PathBuf>(d, "data_dir")?
                .ok_or_else(|| PyValueError::new_err("storage lsm needs data_dir"))?;
            let mut l = LsmSettings::new(&data_dir);
            set(d, "appendfsync", &mut l.appendfsync)?;
            set(d, "memtable_bytes", &mut l.memtable_bytes)?;
            set(d, "block_cache_bytes", &mut l.block_cache_bytes)?;
            set(d, "compaction_rate_bytes", &mut l.compaction_rate_bytes)?;
            set(d, "replication_backlog_bytes", &mut l.backlog_bytes)?;
            StorageSettings::Lsm(l)
        }
        Some(other) => return Err(PyValueError::new_err(format!("unknown storage {other:?}"))),
    };
    repl_settings_from(d, &mut s.repl)?;
    Ok(s)
}

/// The replication settings (config.py's names; see replication/mod.rs).
fn repl_settings_from(d: &Bound<'_, PyDict>, r: &mut crate::replication::ReplSettings) -> PyResult<()> {
    r.replica_of = get::<String>(d, "replica_of")?.filter(|p| !p.is_empty());
    if let Some(mode) = get::<String>(d, "replication_mode")? {
        r.sync = match mode.as_str() {
            "sync" => true,
            "async" => false,
            other => return Err(PyValueError::new_err(format!("replication_mode {other:?}"))),
        };
    }
    if let Some(v) = get::<usize>(d, "sync_replicas")? {
        r.sync_replicas = v.max(1);
    }
    set(d, "sync_degrade", &mut r.sync_degrade)?;
    if let Some(v) = get::<f64>(d, "sync_timeout_s")? {
        r.sync_timeout = Duration::try_from_secs_f64(v)
            .map_err(|_| PyValueError::new_err(format!("setting sync_timeout_s: {v}")))?;
    }
    set(d, "replication_backlog_bytes", &mut r.backlog_bytes)?;
    set(d, "advertise", &mut r.advertise)?;
    r.replica_ca = get::<String>(d, "replica_ca")?.map(Into::into);
    r.replication_token = get::<String>(d, "replication_token")?;
    r.admin_token = get::<String>(d, "admin_token")?;
    r.legacy_token = get::<String>(d, "legacy_token")?;
    r.data_dir = get::<String>(d, "data_dir")?.map(Into::into);
    r.lease_name = get::<String>(d, "lease_name")?.filter(|n| !n.is_empty());
    Ok(())
}

/// The storage engine's figures for /metrics (exported_metrics.py's sources).
fn lsm_stats<'py>(py: Python<'py>, l: &velocity_lsm::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("wal_appends", l.wal_appends)?;
    d.set_item("wal_bytes", l.wal_bytes)?;
    d.set_item("fsync_buckets", PyList::new(py, &l.fsync_buckets)?)?;
    d.set_item("fsync_seconds_sum", l.fsync_seconds_sum)?;
    d.set_item("fsync_lag_seconds", l.fsync_lag_seconds)?;
    d.set_item("fsyncs", l.fsyncs)?;
    d.set_item("writes_refused", l.writes_refused)?;
    d.set_item("write_error", &l.write_error)?;
    d.set_item("torn_bytes", l.recovery.torn_bytes)?;
    d.set_item("memtable_bytes", l.memtable_bytes)?;
    let tiers: Vec<(u32, u64, u64)> = l.tiers.clone();
    d.set_item("tiers", PyList::new(py, tiers)?)?;
    d.set_item("compactions", l.compactions)?;
    d.set_item("compaction_bytes_written", l.compaction_bytes_written)?;
    d.set_item("compaction_buckets", PyList::new(py, &l.compaction_buckets)?)?;
    d.set_item("compaction_seconds_sum", l.compaction_seconds_sum)?;
    d.set_item("flushes", l.flushes)?;
    d.set_item("bloom_negative", l.bloom_negative)?;
    d.set_item("bloom_maybe", l.bloom_maybe)?;
    d.set_item("bloom_false_positives", l.bloom_false_positives)?;
    d.set_item("block_cache_bytes", l.block_cache_bytes)?;
    d.set_item("last_seq", l.last_seq)?;
    d.set_item("durable_seq", l.durable_seq)?;
    let r = &l.recovery;
    let rec = PyDict::new(py);
    rec.set_item("segments", r.segments)?;
    rec.set_item("batches", r.batches)?;
    rec.set_item("torn_bytes", r.torn_bytes)?;
    rec.set_item("torn_at", &r.torn_at)?;
    rec.set_item("removed_files", PyList::new(py, &r.removed_files)?)?;
    rec.set_item("migrated_from_v1", r.migrated_from_v1)?;
    rec.set_item("seconds", r.seconds)?;
    d.set_item("recovery", rec)?;
    Ok(d)
}

/// SNAPSHOT_BEGIN/READ figures for /metrics (exported_metrics.py's `velocity_snapshot*`).
fn snapshot_stats<'py>(py: Python<'py>, x: &crate::snapshot::SnapshotStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("last_success_ts", x.last_success_ts)?;
    d.set_item("last_bytes", x.last_bytes)?;
    d.set_item("last_seconds", x.last_seconds)?;
    d.set_item("completed", x.completed)?;
    d.set_item("failed", x.failed)?;
    d.set_item("refused", x.refused)?;
    d.set_item("expired", x.expired)?;
    d.set_item("files", x.files)?;
    d.set_item("disk_bytes", x.disk_bytes)?;
    d.set_item("removed_at_start", x.removed_at_start)?;
    Ok(d)
}

/// A running data plane.
#[pyclass(module = "velocity_engine._core", name = "Core", frozen)]
struct Core {
    server: Mutex<Option<Server>>,
    port: u16,
    threads: usize,
}

impl Core {
    fn with<T>(&self, f: impl FnOnce(&Server) -> T) -> PyResult<T> {
        let guard = self
            .server
            .lock()
            .map_err(|_| PyRuntimeError::new_err("core lock poisoned"))?;
        guard
            .as_ref()
            .map(f)
            .ok_or_else(|| PyRuntimeError::new_err("the data plane is stopped"))
    }
}

#[pymethods]
impl Core {
    /// The port the listener is bound to.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// Worker threads serving connections.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// Drain (replies owed go out), wait up to `grace_s`, end the workers.
    /// Returns the connections that were cut off. Idempotent.
    fn stop(&self, py: Python<'_>, grace_s: f64) -> PyResult<usize> {
        let server = self
            .server
            .lock()
            .map_err(|_| PyRuntimeError::new_err("core lock poisoned"))?
            .take();
        let grace = Duration::try_from_secs_f64(grace_s.max(0.0)).unwrap_or(Duration::ZERO);
        Ok(match server {
            Some(s) => py.detach(move || s.stop(grace)),
            None => 0,
        })
    }

    /// Counters for /metrics: request counts, latency buckets and sums per
    /// opcode (256 entries each), errors per code, connection and byte counts,
    /// key figures.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (totals, st, lsm, c, expired, maxc, snaps) = self.with(|s| {
            let sh = s.shared();
            let c = &sh.counters;
            (
                sh.totals(),
                sh.keyspace.store().stats(),
                sh.keyspace.store().engine_stats(),
                [
                    c.connections() as u64,
                    c.unauthenticated() as u64,
                    c.accepted_total(),
                    c.rejected_total(),
                    c.auth_failures(),
                ],
                sh.keyspace.expired_total(),
                sh.max_connections(),
                sh.snapshots.as_ref().map(|x| x.stats()),
            )
        })?;
        let d = PyDict::new(py);
        d.set_item("requests", PyList::new(py, &totals.requests)?)?;
        let buckets = PyList::empty(py);
        for op in &totals.buckets {
            debug_assert_eq!(op.len(), NB);
            buckets.append(PyList::new(py, op)?)?;
        }
        d.set_item("latency_buckets", buckets)?;
        let sums: Vec<f64> = totals.latency_sum_ns.iter().map(|&ns| ns as f64 / 1e9).collect();
        d.set_item("latency_sum", PyList::new(py, sums)?)?;
        d.set_item("errors", PyList::new(py, &totals.errors)?)?;
        d.set_item("connections", c[0])?;
        d.set_item("unauthenticated", c[1])?;
        d.set_item("connections_total", c[2])?;
        d.set_item("connections_rejected", c[3])?;
        d.set_item("auth_failures", c[4])?;
        d.set_item("bytes_in", totals.bytes_in)?;
        d.set_item("bytes_out", totals.bytes_out)?;
        d.set_item("keys", st.keys)?;
        d.set_item("keys_with_ttl", st.keys_with_ttl)?;
        d.set_item("data_bytes", st.data_bytes)?;
        d.set_item("expired_keys", expired)?;
        d.set_item("max_connections", maxc)?;
        d.set_item("storage_engine", st.engine)?;
        if let Some(l) = &lsm {
            d.set_item("lsm", lsm_stats(py, l)?)?;
        }
        if let Some(x) = &snaps {
            d.set_item("snapshots", snapshot_stats(py, x)?)?;
        }
        Ok(d)
    }

    /// Applies the live settings the core uses (`max_connections`, `appendfsync`).
    fn set_live_settings(&self, settings: &Bound<'_, PyDict>) -> PyResult<()> {
        let maxc = get::<usize>(settings, "max_connections")?;
        let fsync = get::<String>(settings, "appendfsync")?;
        self.with(|s| {
            if let Some(n) = maxc {
                s.set_max_connections(n);
            }
            match fsync {
                Some(p) => s
                    .shared()
                    .keyspace
                    .store()
                    .set_appendfsync(&p)
                    .map_err(|e| PyValueError::new_err(e.to_string())),
                None => Ok(()),
            }
        })?
    }

    /// The INFO sections the shell owns (a JSON object: `config`, `replication`).
    fn set_info_sections(&self, json: &str) -> PyResult<()> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let serde_json::Value::Object(map) = v else {
            return Err(PyValueError::new_err("a JSON object is expected"));
        };
        self.with(|s| s.set_info_sections(map))
    }

    /// PROMOTE (what the admin opcode does): the primary of a new epoch above
    /// `min_epoch`; returns (epoch, seq). ValueError with the reason when refused.
    fn promote(&self, py: Python<'_>, min_epoch: u64) -> PyResult<(u64, u64)> {
        let shared = self.with(|s| s.shared().clone())?;
        // Stopping the follower joins its thread: not under the GIL.
        py.detach(move || shared.repl.promote(min_epoch, &shared))
            .map_err(|e| PyValueError::new_err(format!("{}: {}", e.code.name(), e.message)))
    }

    /// REPLICA_OF (what the admin opcode does): follow `primary` (empty: fence);
    /// `epoch` 0 when not given. Returns the node's epoch after.
    fn replica_of(&self, py: Python<'_>, primary: String, epoch: u64) -> PyResult<u64> {
        let shared = self.with(|s| s.shared().clone())?;
        py.detach(move || shared.repl.replica_of(&primary, epoch, &shared))
            .map_err(|e| PyValueError::new_err(format!("{}: {}", e.code.name(), e.message)))
    }

    /// The replication state as INFO reports it (a JSON object).
    fn replication_state(&self) -> PyResult<String> {
        self.with(|s| s.shared().repl.info(s.shared()).to_string())
    }

    /// Lease mode: the next PROMOTE or REPLICA_OF a client sent, waiting up to
    /// `timeout_s` (None: none came): (id, opcode, body). Releases the GIL.
    fn admin_next(&self, py: Python<'_>, timeout_s: f64) -> PyResult<Option<(u64, u8, Vec<u8>)>> {
        let shared = self.with(|s| s.shared().clone())?;
        let timeout = Duration::try_from_secs_f64(timeout_s.max(0.0)).unwrap_or(Duration::ZERO);
        Ok(py.detach(move || shared.repl.lease.as_ref().and_then(|l| l.admin.next(timeout))))
    }

    /// Answers admin request `id` with a response body; False if nobody waits for it.
    fn admin_reply(&self, id: u64, body: Vec<u8>) -> PyResult<bool> {
        self.with(|s| lease_of(s).map(|l| l.admin.reply(id, Ok(body))))?
    }

    /// Answers admin request `id` with an error (a protocol code, a message, and for
    /// REDIRECT the primary and a retry hint); False if nobody waits for it.
    #[pyo3(signature = (id, code, message, primary = String::new(), retry_after_ms = 0))]
    fn admin_fail(&self, id: u64, code: u16, message: String, primary: String, retry_after_ms: u32) -> PyResult<bool> {
        let mut e =
            crate::error::VError::new(velocity_proto::ErrorCode::from_u16(code), message).retry_after(retry_after_ms);
        e.primary = primary;
        self.with(|s| lease_of(s).map(|l| l.admin.reply(id, Err(e))))?
    }

    /// Lease mode: the Lease is surely this node's for `remaining_s` more (after a renewal).
    fn lease_renewed(&self, remaining_s: f64) -> PyResult<()> {
        let d = Duration::try_from_secs_f64(remaining_s.max(0.0)).unwrap_or(Duration::ZERO);
        self.with(|s| lease_of(s).map(|l| l.renewed(d)))?
    }

    /// Lease mode: fence writes for a switchover to `target` (REDIRECT, retry); "" unfences.
    fn set_handover(&self, target: &str) -> PyResult<()> {
        self.with(|s| lease_of(s).map(|l| l.set_handover(target)))?
    }

    /// Lease mode: INFO's fields only the shell knows (JSON: `holder`, `switchover`).
    fn set_lease_info(&self, json: &str) -> PyResult<()> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.with(|s| lease_of(s).map(|l| l.show(v)))?
    }

    /// The Lease agent's fence: a primary stops serving (keep_feeds: still streams);
    /// a node already fenced closes the feeds it kept unless keep_feeds.
    fn fence(&self, py: Python<'_>, reason: String, keep_feeds: bool) -> PyResult<()> {
        let shared = self.with(|s| s.shared().clone())?;
        py.detach(move || shared.repl.lease_fence(&reason, keep_feeds));
        Ok(())
    }

    /// (is_primary, primary followed, epoch, seq, incomplete, sync write waiting):
    /// what the Lease agent reads each round, without INFO's JSON.
    fn role(&self) -> PyResult<(bool, String, u64, u64, bool, bool)> {
        self.with(|s| {
            let sh = s.shared();
            let r = &sh.repl;
            let (_, seq) = sh.keyspace.store().log_position();
            (
                r.is_primary(),
                r.primary_endpoint(),
                r.epoch(),
                seq,
                r.incomplete.load(std::sync::atomic::Ordering::Acquire),
                r.sync_pending(seq),
            )
        })
    }

    /// The connected replicas: (id, endpoint, streaming, acknowledged seq).
    fn replica_links(&self) -> PyResult<Vec<(u64, String, bool, u64)>> {
        self.with(|s| s.shared().repl.links())
    }

    /// The INFO document (JSON), or one section of it.
    #[pyo3(signature = (section = ""))]
    fn info(&self, section: &str) -> PyResult<String> {
        self.with(|s| crate::info::render(s.shared(), section))?
            .map_err(|e| PyValueError::new_err(e.message))
    }
}

fn lease_of(s: &Server) -> PyResult<&crate::replication::lease::LeaseMode> {
    s.shared()
        .repl
        .lease
        .as_ref()
        .ok_or_else(|| PyRuntimeError::new_err("the core was not started in lease mode (lease_name)"))
}

/// `velocity-engine check [--repair]` for a storage directory (DATA_DIR/storage)
/// with velocity-lsm's checker, which reads WAL versions 1 and 2 (the Python
/// checker reads version 1 only). Returns (start-up would succeed, findings).
#[pyfunction]
#[pyo3(signature = (storage_dir, repair = false))]
fn check_dir(py: Python<'_>, storage_dir: std::path::PathBuf, repair: bool) -> (bool, Vec<String>) {
    let r = py.detach(move || velocity_lsm::check::check_dir(&velocity_lsm::fs::RealFs, &storage_dir, repair));
    (r.ok, r.lines)
}

/// `--restore-from`: builds `storage_dir` from a snapshot file with velocity-lsm
/// (tables and a version-2 manifest; the `RESTORED_FROM` marker of the Python
/// engine). Returns the entries restored, or None when the directory was already
/// restored from this file (a restart with the same flag keeps later writes).
#[pyfunction]
fn restore_snapshot(
    py: Python<'_>,
    snapshot: std::path::PathBuf,
    storage_dir: std::path::PathBuf,
) -> PyResult<Option<u64>> {
    let r = py.detach(move || {
        velocity_lsm::snapshot_file::restore_snapshot_file(&velocity_lsm::fs::RealFs, &snapshot, &storage_dir)
    });
    match r {
        Ok(info) => Ok(info.map(|i| i.entries)),
        Err(velocity_lsm::Error::Corruption { path, offset, reason }) => {
            Err(StorageCorruption::new_err((path.display().to_string(), offset, reason)))
        }
        Err(e) => Err(PyOSError::new_err(e.to_string())),
    }
}

/// Starts the data plane with `settings` (see the module documentation).
#[pyfunction]
fn start(py: Python<'_>, settings: &Bound<'_, PyDict>) -> PyResult<Core> {
    let s = settings_from(settings)?;
    let threads = s.worker_threads();
    let server = py.detach(move || Server::start(s)).map_err(|e| match e {
        StartError::Storage(OpenError::Db {
            source: velocity_lsm::Error::Corruption { path, offset, reason },
            ..
        }) => StorageCorruption::new_err((path.display().to_string(), offset, reason)),
        StartError::Storage(OpenError::Setting(why)) => PyValueError::new_err(why),
        StartError::Bind { .. } | StartError::Runtime(_) | StartError::Tls(_) | StartError::Storage(_) => {
            PyOSError::new_err(e.to_string())
        }
    })?;
    Ok(Core {
        port: server.port(),
        threads,
        server: Mutex::new(Some(server)),
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(check_dir, m)?)?;
    m.add_function(wrap_pyfunction!(restore_snapshot, m)?)?;
    m.add_class::<Core>()?;
    m.add("StorageCorruption", m.py().get_type::<StorageCorruption>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
