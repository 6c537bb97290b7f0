//! The bounds-checked, zero-copy FlatBuffers table reader: a re-export of
//! `velocity_proto::reader`.
//!
//! It moved to velocity-proto with the decoders that use it (issue 13: one Rust
//! codec; see [`crate::codec`]). This shim keeps the path `velocity_core::fb`
//! working for the core and its users; new code may use either path.
pub use velocity_proto::reader::*;
