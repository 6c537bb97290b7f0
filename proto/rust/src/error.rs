//! Decoding errors, each with the protocol error code a server answers with.

use crate::ErrorCode;

/// Framing errors. All are fatal: the byte stream can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first four bytes are not `VELO`.
    #[error("bad magic {0:02x?} (expected \"VELO\")")]
    BadMagic([u8; 4]),
    /// Reserved flag bits or values are set.
    #[error("reserved flag bits set: 0x{0:02x}")]
    ReservedFlags(u8),
    /// The body is larger than the receiver's limit.
    #[error("frame body of {len} bytes is above the limit of {limit}")]
    TooLarge {
        /// Declared body length.
        len: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// The CRC-32 trailer does not match the header and body.
    #[error("bad CRC: trailer 0x{trailer:08x}, computed 0x{computed:08x}")]
    BadCrc {
        /// The trailer as sent.
        trailer: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// The body is compressed, which this receiver did not negotiate.
    #[error("compressed body (flags 0x{0:02x}) without negotiated compression")]
    Compressed(u8),
}

impl FrameError {
    /// The protocol error code for this failure.
    ///
    /// ```
    /// use velocity_proto::{ErrorCode, FrameError};
    /// assert_eq!(FrameError::ReservedFlags(0x80).code(), ErrorCode::Protocol);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadMagic(_) | Self::ReservedFlags(_) | Self::Compressed(_) => ErrorCode::Protocol,
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::BadCrc { .. } => ErrorCode::BadCrc,
        }
    }
}

/// A body that is not a valid FlatBuffer of the expected table (`PROTOCOL`, not fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {table} body: {reason}")]
pub struct BodyError {
    /// The table that was expected.
    pub table: &'static str,
    /// What the verifier found.
    pub reason: String,
}

impl BodyError {
    /// The same error, naming the table that was expected (the reader does not know it).
    ///
    /// ```
    /// use velocity_proto::reader::Table;
    /// let e = Table::root(&[1]).unwrap_err().in_table("KeyRequest");
    /// assert_eq!(e.to_string(), "malformed KeyRequest body: body of 1 bytes is too short for a FlatBuffer");
    /// ```
    #[must_use]
    pub fn in_table(self, table: &'static str) -> Self {
        Self { table, ..self }
    }

    /// Always [`ErrorCode::Protocol`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Protocol
    }
}
