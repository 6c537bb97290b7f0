//! Request bodies in, reply bodies out: a re-export of `velocity_proto::server`.
//!
//! The server direction of the body codec lives in velocity-proto beside the
//! client direction, so there is one Rust codec with one set of tests (issue 13;
//! proto/rust/src/server.rs, tested there against the client encoders and the
//! shared vectors). This shim exists only so the core's call sites
//! (`codec::get_found`, `codec::set_request`, ...) did not change when the code
//! moved; new code may use either path. A refused body is a
//! `velocity_proto::BodyError`, which `?` turns into a non-fatal `PROTOCOL`
//! [`crate::VError`].
pub use velocity_proto::server::*;
