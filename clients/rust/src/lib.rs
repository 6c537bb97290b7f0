//! The Rust SDK for Velocity.
//!
//! ```no_run
//! use velocity_sdk::Client;
//!
//! # async fn demo() -> Result<(), velocity_sdk::Error> {
//! let client = Client::builder()
//!   .endpoint("vdb://internal-v1")
//!   .pool_size(16)
//!   .build().await?;
//!
//! client.set("session:0xF1", serde_json::json!({"active": true})).await?;
//! let session = client.get("session:0xF1").await?;        // Some(Value::Json(..))
//! let hits = client.incr("counters:req_total", 1).await?; // i64
//! # Ok(()) }
//! ```
//!
//! - One [`Client`] holds `pool_size` TLS 1.3 connections; each pipelines many
//!   requests (replies matched in order, requests queued together sent in one
//!   write), so thousands of concurrent calls are fine.
//! - Values keep their type across SDKs ([`Value`]): bytes, text, 64-bit
//!   integers and JSON, exactly as the Python SDK stores them.
//! - Fail-over: `REDIRECT` is followed to the primary; with several
//!   [`endpoints`](ClientBuilder::endpoints) an unreachable node is skipped; reads
//!   are retried once on a fresh connection; a write whose connection broke is
//!   [`Error::OutcomeUnknown`] and is never resent
//!   ([`Error::may_have_happened`]).
//! - The wire format is `velocity-proto` (docs/formats/protocol.md).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
mod endpoint;
mod error;
mod tls;
mod ttl;
mod value;

pub use client::{Client, ClientBuilder, Scan, SetOptions};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use ttl::Ttl;
pub use value::Value;
pub use velocity_proto::ErrorCode;
