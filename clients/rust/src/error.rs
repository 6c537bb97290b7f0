//! The SDK's error type: one enum, the protocol's error codes in one variant.

use velocity_proto::ErrorCode;

/// Everything a call can fail with.
///
/// The variant says what is known about the request:
/// - [`Error::Server`]: the server answered with an error (`code` is the
///   protocol's code); a non-fatal error means nothing was done.
/// - [`Error::Connect`], [`Error::Tls`]: no connection, so the request was
///   not sent; it is safe to retry.
/// - [`Error::OutcomeUnknown`]: a write was sent and its connection broke or
///   it timed out before the reply: it **may have happened**. The SDK never
///   retries such a write on its own.
/// - [`Error::ConnectionLost`], [`Error::Timeout`]: a read failed even after
///   its one retry.
///
/// ```
/// use velocity_sdk::{Error, ErrorCode};
/// let e = Error::OutcomeUnknown { op: "INCR", reason: "connection reset".into() };
/// assert!(e.may_have_happened());
/// assert_eq!(e.code(), None);
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an `ErrorResponse`.
    #[error("{code}: {message}")]
    Server {
        /// The protocol error code.
        code: ErrorCode,
        /// The server's one-line message.
        message: String,
        /// With `REDIRECT`: the primary's endpoint, when known.
        primary: Option<String>,
        /// With `BUSY`/`REDIRECT`: a retry hint in ms (0: none).
        retry_after_ms: u32,
    },
    /// TCP connect failed or timed out (the request was not sent).
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (wrong CA, wrong name, not a TLS server); not sent.
    #[error("TLS handshake with {endpoint} failed: {reason}")]
    Tls {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A write was sent but no reply came (connection lost or timeout): it may have happened.
    #[error("outcome of {op} unknown (it may have happened): {reason}")]
    OutcomeUnknown {
        /// The operation (`"SET"`, `"INCR"`, ...).
        op: &'static str,
        /// Why no reply came.
        reason: String,
    },
    /// A read's connection broke, also on its retry.
    #[error("connection lost during {op}: {reason}")]
    ConnectionLost {
        /// The operation.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// A read got no reply within the request timeout.
    #[error("{op} timed out")]
    Timeout {
        /// The operation.
        op: &'static str,
    },
    /// The server sent bytes that are not valid V-Proto (the connection is dropped).
    #[error("protocol error from the server: {0}")]
    Protocol(String),
    /// A stored value does not decode as its kind (for example an Int that is not 8 bytes).
    #[error("stored value is not a valid {kind}: {reason}")]
    BadValue {
        /// The kind it was tagged with.
        kind: &'static str,
        /// Why it does not decode.
        reason: String,
    },
    /// A bad argument on the client side (TTL, endpoint, CA file, ...); nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The protocol error code, for errors the server sent.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when a write was sent and may or may not have been applied.
    pub fn may_have_happened(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
    }

    /// True when the request certainly did not reach the server (safe to retry any operation).
    pub fn not_sent(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Tls { .. } | Self::InvalidArgument(_))
            || matches!(self, Self::Server { code, .. } if *code == ErrorCode::Redirect || *code == ErrorCode::Busy)
    }

    pub(crate) fn server(code: u16, message: &str, primary: &str, retry_after_ms: u32) -> Self {
        Self::Server {
            code: ErrorCode::from_u16(code),
            message: message.to_owned(),
            primary: (!primary.is_empty()).then(|| primary.to_owned()),
            retry_after_ms,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
