//! Opcodes and error codes (docs/formats/protocol.md sections 3 and 6).

/// A frame's opcode byte. Responses carry the request's opcode with bit 7 set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u8);

#[allow(missing_docs)]
impl Opcode {
    pub const HELLO: Self = Self(0x01);
    pub const PING: Self = Self(0x02);
    pub const INFO: Self = Self(0x03);
    pub const GET: Self = Self(0x10);
    pub const SET: Self = Self(0x11);
    pub const DEL: Self = Self(0x12);
    pub const EXISTS: Self = Self(0x13);
    pub const INCR: Self = Self(0x14);
    pub const EXPIRE: Self = Self(0x15);
    pub const PERSIST: Self = Self(0x16);
    pub const TTL: Self = Self(0x17);
    pub const CAS: Self = Self(0x18);
    pub const MGET: Self = Self(0x20);
    pub const MSET: Self = Self(0x21);
    pub const SCAN: Self = Self(0x22);
    pub const SNAPSHOT_BEGIN: Self = Self(0x30);
    pub const SNAPSHOT_READ: Self = Self(0x31);
    pub const REPL_SYNC: Self = Self(0x40);
    pub const REPL_SNAPSHOT: Self = Self(0x41);
    pub const REPL_BATCHES: Self = Self(0x42);
    pub const REPL_HEARTBEAT: Self = Self(0x43);
    pub const REPL_ACK: Self = Self(0x44);
    pub const PROMOTE: Self = Self(0x45);
    pub const REPLICA_OF: Self = Self(0x46);
    /// An error reply, whatever the request was.
    pub const ERROR: Self = Self(0xFF);
    /// Bit 7: set in every response opcode.
    pub const RESPONSE_BIT: u8 = 0x80;

    /// The opcode of the reply to this request.
    ///
    /// ```
    /// use velocity_proto::Opcode;
    /// assert_eq!(Opcode::GET.response(), Opcode(0x90));
    /// ```
    pub const fn response(self) -> Self {
        Self(self.0 | Self::RESPONSE_BIT)
    }

    /// Whether this opcode is assigned by protocol version 1 (as a request).
    ///
    /// ```
    /// use velocity_proto::Opcode;
    /// assert!(Opcode::SCAN.is_assigned_request());
    /// assert!(!Opcode(0x7E).is_assigned_request());
    /// ```
    pub const fn is_assigned_request(self) -> bool {
        matches!(self.0, 0x01..=0x03 | 0x10..=0x18 | 0x20..=0x22 | 0x30 | 0x31 | 0x40..=0x46)
    }
}

/// The `code` of an `ErrorResponse`. Unknown codes are kept as [`ErrorCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ErrorCode {
    Protocol,
    BadCrc,
    FrameTooLarge,
    UnknownOpcode,
    NoAuth,
    AuthFailed,
    Busy,
    WrongType,
    Overflow,
    NotInteger,
    KeyTooLarge,
    ValueTooLarge,
    InvalidArgument,
    Redirect,
    WritesRefused,
    ShuttingDown,
    UnsupportedVersion,
    Timeout,
    Internal,
    NotEnoughReplicas,
    StaleEpoch,
    PermissionDenied,
    /// A code this version does not know (clients treat it as an error with its message).
    Other(u16),
}

const CODES: [(ErrorCode, u16, &str, bool); 22] = [
    (ErrorCode::Protocol, 1, "PROTOCOL", true),
    (ErrorCode::BadCrc, 2, "BAD_CRC", true),
    (ErrorCode::FrameTooLarge, 3, "FRAME_TOO_LARGE", true),
    (ErrorCode::UnknownOpcode, 4, "UNKNOWN_OPCODE", false),
    (ErrorCode::NoAuth, 5, "NOAUTH", true),
    (ErrorCode::AuthFailed, 6, "AUTH_FAILED", true),
    (ErrorCode::Busy, 7, "BUSY", true),
    (ErrorCode::WrongType, 8, "WRONG_TYPE", false),
    (ErrorCode::Overflow, 9, "OVERFLOW", false),
    (ErrorCode::NotInteger, 10, "NOT_INTEGER", false),
    (ErrorCode::KeyTooLarge, 11, "KEY_TOO_LARGE", false),
    (ErrorCode::ValueTooLarge, 12, "VALUE_TOO_LARGE", false),
    (ErrorCode::InvalidArgument, 13, "INVALID_ARGUMENT", false),
    (ErrorCode::Redirect, 14, "REDIRECT", false),
    (ErrorCode::WritesRefused, 15, "WRITES_REFUSED", false),
    (ErrorCode::ShuttingDown, 16, "SHUTTING_DOWN", true),
    (ErrorCode::UnsupportedVersion, 17, "UNSUPPORTED_VERSION", true),
    (ErrorCode::Timeout, 18, "TIMEOUT", true),
    (ErrorCode::Internal, 19, "INTERNAL", false),
    (ErrorCode::NotEnoughReplicas, 20, "NOT_ENOUGH_REPLICAS", false),
    (ErrorCode::StaleEpoch, 21, "STALE_EPOCH", false),
    (ErrorCode::PermissionDenied, 22, "PERMISSION_DENIED", false),
];

impl ErrorCode {
    /// The code for a wire number.
    ///
    /// ```
    /// use velocity_proto::ErrorCode;
    /// assert_eq!(ErrorCode::from_u16(14), ErrorCode::Redirect);
    /// assert_eq!(ErrorCode::from_u16(999), ErrorCode::Other(999));
    /// ```
    pub fn from_u16(code: u16) -> Self {
        CODES.iter().find(|c| c.1 == code).map_or(Self::Other(code), |c| c.0)
    }

    /// The wire number.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Other(n) => n,
            known => CODES.iter().find(|c| c.0 == known).map_or(0, |c| c.1),
        }
    }

    /// The name used in the spec and the vectors (`"BAD_CRC"`); `"UNKNOWN"` for [`ErrorCode::Other`].
    pub fn name(self) -> &'static str {
        CODES.iter().find(|c| c.0 == self).map_or("UNKNOWN", |c| c.2)
    }

    /// The code for a spec name (`"REDIRECT"`), as the vectors spell it.
    pub fn from_name(name: &str) -> Option<Self> {
        CODES.iter().find(|c| c.2 == name).map(|c| c.0)
    }

    /// Whether the server closes the connection after this error.
    pub fn is_fatal(self) -> bool {
        CODES.iter().find(|c| c.0 == self).is_some_and(|c| c.3)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Other(n) => write!(f, "error code {n}"),
            known => f.write_str(known.name()),
        }
    }
}
