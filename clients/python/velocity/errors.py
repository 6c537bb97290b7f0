"""Every exception the SDK raises, in one place.

    VelocityError                       base of everything below (vproto.errors.VelocityError)
    ├── ClientError                     detected by the SDK itself, not sent by a server
    │   ├── ConnectionError             could not connect, or the connection broke (also builtins.ConnectionError)
    │   │   ├── ConnectionClosedError   the server closed the connection
    │   │   └── TLSError                handshake or certificate verification failed, CA file unusable
    │   ├── TimeoutError                connect or request took longer than its setting (also builtins.TimeoutError)
    │   ├── UnknownOutcomeError         a write was sent and no reply came: it may or may not have been applied
    │   │   └── WriteTimeoutError       ... because the request timeout passed (also a TimeoutError)
    │   └── ConfigurationError          a bad URL, an unreadable token file (also ValueError)
    └── the server's coded errors: AuthError (AUTH_FAILED), BusyError, WrongTypeError, NotIntegerError,
        RedirectError, WritesRefusedError, ... (one class per wire code, see vproto.errors)

The coded errors are the very classes of vproto.errors, so code written against
vproto.errors keeps working. The client-side errors also derive from the builtin
exception they stand for (ConnectionError, TimeoutError, ValueError), so code that
caught the raw stdlib exceptions the SDK used to let through keeps working too.
"""

from __future__ import annotations

import builtins

from vproto.errors import (
    AuthFailedError,
    BadCrcError,
    BusyError,
    ErrorCode,
    FrameTooLargeError,
    InternalError,
    InvalidArgumentError,
    KeyTooLargeError,
    NoAuthError,
    NotEnoughReplicasError,
    NotIntegerError,
    OverflowError_,
    PermissionDeniedError,
    ProtocolError,
    RedirectError,
    ShuttingDownError,
    StaleEpochError,
    UnknownOpcodeError,
    UnsupportedVersionError,
    ValueTooLargeError,
    VelocityError,
    WritesRefusedError,
    WrongTypeError,
)
from vproto.errors import TimeoutError_ as ServerTimeoutError

# The server refused the token (wire code AUTH_FAILED); same class as vproto.errors.AuthFailedError.
AuthError = AuthFailedError

CA_HINT = "pass the CA certificate that signed the server's certificate: ca= / ?ca= in the SDK, --ca or VDB_CA"


class ClientError(VelocityError):
    """An error the SDK detected itself (no server sent it); `code` is INTERNAL and carries no meaning."""

    def __str__(self) -> str:
        return self.message


class ConnectionError(ClientError, builtins.ConnectionError):
    """The SDK could not connect to the server, or an open connection broke."""


class ConnectionClosedError(ConnectionError):
    """The connection went away; requests in flight on it have an unknown outcome."""


class TLSError(ConnectionError):
    """TLS failed: the handshake or certificate check, or the CA file could not be used.

    The message names the CA file and says how to pass the right one (`CA_HINT`)."""


class TimeoutError(ClientError, builtins.TimeoutError):
    """Connecting or a request took longer than its timeout setting."""


class UnknownOutcomeError(ClientError):
    """A write was sent but its reply never came (connection lost or timeout): it may have been applied.

    Writes are never retried by the SDK (retrying INCR would count twice); read the
    key to find out, or retry yourself if the write is idempotent (SET, DEL)."""


class WriteTimeoutError(UnknownOutcomeError, TimeoutError):
    """A write's request timeout passed before its reply came; it may have been applied."""


class ConfigurationError(ClientError, builtins.ValueError):
    """A setting cannot be used: a malformed URL, an unreadable token file."""


__all__ = [
    "CA_HINT",
    "AuthError",
    "AuthFailedError",
    "BadCrcError",
    "BusyError",
    "ClientError",
    "ConfigurationError",
    "ConnectionClosedError",
    "ConnectionError",
    "ErrorCode",
    "FrameTooLargeError",
    "InternalError",
    "InvalidArgumentError",
    "KeyTooLargeError",
    "NoAuthError",
    "NotEnoughReplicasError",
    "NotIntegerError",
    "OverflowError_",
    "PermissionDeniedError",
    "ProtocolError",
    "RedirectError",
    "ServerTimeoutError",
    "ShuttingDownError",
    "StaleEpochError",
    "TLSError",
    "TimeoutError",
    "UnknownOpcodeError",
    "UnknownOutcomeError",
    "UnsupportedVersionError",
    "ValueTooLargeError",
    "VelocityError",
    "WriteTimeoutError",
    "WritesRefusedError",
    "WrongTypeError",
]
