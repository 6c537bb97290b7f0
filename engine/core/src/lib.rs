//! Velocity's native data plane (issue 13): the request path of the engine in
//! Rust, hosted by the `velocity_engine` Python package as the extension
//! module `velocity_engine._core` (feature `python`, src/python.rs).
//!
//! Python stays the process shell and the control plane (flags, config, TLS
//! material and tokens, /metrics, config reload); the core owns every byte of a
//! request: accept, TLS 1.3, framing, HELLO and roles, limits and timeouts,
//! backpressure, and the semantics of every data opcode. See docs/engine.md.
//!
//! Layout, one concept per file:
//! - [`server`]: threads, listener, accept, drain and stop; the shared state;
//! - [`conn`]: one connection (framing, probation, timers, backpressure);
//! - [`dispatch`]: the checks every request passes and the opcode handlers;
//! - [`codec`] and [`fb`]: request bodies in (zero-copy), reply bodies out;
//!   re-exports of `velocity_proto::server` and `velocity_proto::reader`, where
//!   the codec lives beside the client direction (one Rust codec);
//! - [`keyspace`]: command semantics (TTL, NX/XX, INCR, CAS, MGET/MSET, SCAN, expiry);
//! - [`store`], [`memory`] and [`lsm_store`]: the storage contract, the in-memory
//!   store and the durable one (velocity-lsm); [`record_buf`]: a record in one
//!   allocation (the memory store's unit, and the values records carry);
//! - [`auth`], [`tls`]: credentials, roles, throttle; the TLS 1.3 config;
//! - [`stats`], [`info`]: counters and histograms; the INFO document;
//! - [`snapshot`]: SNAPSHOT_BEGIN/READ, the export of snapshot files.
//!
//! Nothing here panics on bytes from the network: decoders return errors
//! carrying the protocol code to answer with.
// `unsafe` is denied everywhere but record_buf.rs (a thin reference-counted
// record) and memory.rs's one call of its in-place overwrite, each with its
// SAFETY comment; the PyO3 binding's macros need it too.
#![cfg_attr(not(feature = "python"), deny(unsafe_code))]

pub mod auth;
pub mod codec;
pub mod conn;
pub mod dispatch;
pub mod error;
pub mod fb;
pub mod info;
pub mod keyspace;
pub mod lsm_store;
pub mod memlog;
pub mod memory;
#[allow(unsafe_code)]
pub mod record_buf;
pub mod replication;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod tls;

#[cfg(feature = "python")]
mod python;

pub use error::{VError, VResult};
pub use server::{Server, StartError};
pub use settings::{Settings, TlsFiles};
