//! Errors answered on the wire: a protocol code, one line for humans, and
//! whether the connection closes after the reply.
//!
//! The codes are the protocol's (`velocity_proto::ErrorCode`); fatality follows
//! the table of docs/formats/protocol.md section 6, except that a malformed
//! *body* (`PROTOCOL`) is not fatal while a broken *frame* is: the framing is
//! intact in the first case (vproto/errors.py draws the same line).

use velocity_proto::{BodyError, ErrorCode};

/// An error reply. `primary` and `retry_after_ms` travel in the ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct VError {
    /// The wire code.
    pub code: ErrorCode,
    /// One line for humans (cut to 1024 characters on the wire).
    pub message: String,
    /// REDIRECT: the primary's endpoint.
    pub primary: String,
    /// BUSY / REDIRECT: a hint.
    pub retry_after_ms: u32,
    /// The server closes the connection after sending this error.
    pub fatal: bool,
}

impl VError {
    /// An error whose fatality is the code's (protocol.md section 6).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            primary: String::new(),
            retry_after_ms: 0,
            fatal: code.is_fatal(),
        }
    }

    /// A malformed body: `PROTOCOL`, answered, and the connection continues.
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            fatal: false,
            ..Self::new(ErrorCode::Protocol, message)
        }
    }

    /// A broken frame (bad magic, reserved flags): `PROTOCOL`, fatal.
    pub fn frame(message: impl Into<String>) -> Self {
        Self {
            fatal: true,
            ..Self::new(ErrorCode::Protocol, message)
        }
    }

    /// `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// Adds a retry hint (BUSY).
    pub fn retry_after(mut self, ms: u32) -> Self {
        self.retry_after_ms = ms;
        self
    }
}

/// A body the codec refused: `PROTOCOL`, not fatal, and the message is the
/// reader's reason alone (the words the Python engine answers with).
impl From<BodyError> for VError {
    fn from(e: BodyError) -> Self {
        Self::body(e.reason)
    }
}

/// Results of request handling.
pub type VResult<T> = Result<T, VError>;
