//! The SDK's error type: one enum, the protocol's error codes in one variant.

use velocity_proto::ErrorCode;

/// Everything a call can fail with.
///
/// The variant says what is known about the request:
/// - [`Error::Server`]: the server answered with an error (`code` is the
///   protocol's code); nothing was done, except for `NOT_ENOUGH_REPLICAS` and
///   `TIMEOUT` answering a write: with sync replication they also replace the
///   reply of a write that was applied locally but whose replicas did not
///   acknowledge it in time, so such a write may have happened
///   ([`Error::may_have_happened`] says so).
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
    ///
    /// ```no_run
    /// # async fn demo(client: velocity_sdk::Client) -> Result<(), velocity_sdk::Error> {
    /// use velocity_sdk::ErrorCode;
    /// match client.incr("name", 1).await {
    ///     Err(e) if e.code() == Some(ErrorCode::NotInteger) => println!("not a counter"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when a write was sent and may or may not have been applied: no reply
    /// came ([`Error::OutcomeUnknown`]), or the server answered `NOT_ENOUGH_REPLICAS`
    /// or `TIMEOUT` (docs/formats/protocol.md section 5: a write held for sync
    /// replication whose replicas did not acknowledge it in time). Read the key
    /// back to find out; the SDK never resends such a write.
    ///
    /// ```
    /// use velocity_sdk::{Error, ErrorCode};
    /// let held = Error::Server {
    ///     code: ErrorCode::NotEnoughReplicas,
    ///     message: "no replica acknowledged".into(),
    ///     primary: None,
    ///     retry_after_ms: 0,
    /// };
    /// assert!(held.may_have_happened());
    /// ```
    pub fn may_have_happened(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
            || matches!(
                self,
                Self::Server {
                    code: ErrorCode::NotEnoughReplicas | ErrorCode::Timeout,
                    ..
                }
            )
    }

    /// True when the request certainly did not reach the server (safe to retry any operation).
    ///
    /// ```
    /// use velocity_sdk::Error;
    /// let e = Error::Connect { endpoint: "vdb://db:2005".into(), reason: "refused".into() };
    /// assert!(e.not_sent() && !e.may_have_happened());
    /// ```
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
///
/// ```no_run
/// async fn hits(client: &velocity_sdk::Client) -> velocity_sdk::Result<i64> {
///     client.incr("hits", 1).await
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
