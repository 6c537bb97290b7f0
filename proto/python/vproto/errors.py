"""Wire error codes and the exceptions they map to.

One table (`_BY_CODE`) maps every wire code to an exception class, so the
server raises typed errors and the SDK re-raises the same types from an
ErrorResponse.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Error codes carried by ErrorResponse.code (u16). Never renumber."""

    PROTOCOL = 1  # malformed body or frame; fatal when framing is lost
    BAD_CRC = 2  # trailer does not match; fatal
    FRAME_TOO_LARGE = 3  # body length above the server's limit; fatal
    UNKNOWN_OPCODE = 4
    NOAUTH = 5  # a request before a successful HELLO; fatal
    AUTH_FAILED = 6  # wrong token; fatal
    BUSY = 7  # connection limit reached or server overloaded; fatal
    WRONG_TYPE = 8  # e.g. INCR on a JSON value
    OVERFLOW = 9  # INCR would leave the signed 64-bit range
    NOT_INTEGER = 10  # INCR on a value that is not an integer
    KEY_TOO_LARGE = 11
    VALUE_TOO_LARGE = 12
    INVALID_ARGUMENT = 13
    REDIRECT = 14  # not the primary: see ErrorResponse.primary
    WRITES_REFUSED = 15  # the server stopped accepting writes (disk/fsync failure)
    SHUTTING_DOWN = 16
    UNSUPPORTED_VERSION = 17
    TIMEOUT = 18  # a frame arrived too slowly
    INTERNAL = 19
    NOT_ENOUGH_REPLICAS = 20  # sync replication: fewer replicas connected than required
    STALE_EPOCH = 21  # a replication request from an older epoch (a deposed primary)
    PERMISSION_DENIED = 22  # the session's credential may not run this opcode (roles: protocol.md 4.1)


class VelocityError(Exception):
    """An error reported by a Velocity server (or detected by the codec)."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self, message: str, *, primary: str = "", retry_after_ms: int = 0, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.primary = primary
        self.retry_after_ms = retry_after_ms
        if code is not None:
            self.code = ErrorCode(code)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @property
    def fatal(self) -> bool:
        """Whether the server closes the connection after answering this error."""
        return self.code in FATAL_CODES


class ProtocolError(VelocityError):
    code = ErrorCode.PROTOCOL

    @property
    def fatal(self) -> bool:
        # Spec section 6: a malformed *body* leaves the framing intact, so it is
        # answered and the connection continues. Framing errors and reserved
        # flags raise FrameError (vproto.frame), which is fatal.
        return False


class BadCrcError(VelocityError):
    code = ErrorCode.BAD_CRC


class FrameTooLargeError(VelocityError):
    code = ErrorCode.FRAME_TOO_LARGE


class UnknownOpcodeError(VelocityError):
    code = ErrorCode.UNKNOWN_OPCODE


class NoAuthError(VelocityError):
    code = ErrorCode.NOAUTH


class AuthFailedError(VelocityError):
    code = ErrorCode.AUTH_FAILED


class BusyError(VelocityError):
    code = ErrorCode.BUSY


class WrongTypeError(VelocityError):
    code = ErrorCode.WRONG_TYPE


class OverflowError_(VelocityError):
    code = ErrorCode.OVERFLOW


class NotIntegerError(VelocityError):
    code = ErrorCode.NOT_INTEGER


class KeyTooLargeError(VelocityError):
    code = ErrorCode.KEY_TOO_LARGE


class ValueTooLargeError(VelocityError):
    code = ErrorCode.VALUE_TOO_LARGE


class InvalidArgumentError(VelocityError):
    code = ErrorCode.INVALID_ARGUMENT


class RedirectError(VelocityError):
    code = ErrorCode.REDIRECT


class WritesRefusedError(VelocityError):
    code = ErrorCode.WRITES_REFUSED


class ShuttingDownError(VelocityError):
    code = ErrorCode.SHUTTING_DOWN


class UnsupportedVersionError(VelocityError):
    code = ErrorCode.UNSUPPORTED_VERSION


class TimeoutError_(VelocityError):
    code = ErrorCode.TIMEOUT


class InternalError(VelocityError):
    code = ErrorCode.INTERNAL


class NotEnoughReplicasError(VelocityError):
    code = ErrorCode.NOT_ENOUGH_REPLICAS


class StaleEpochError(VelocityError):
    code = ErrorCode.STALE_EPOCH


class PermissionDeniedError(VelocityError):
    code = ErrorCode.PERMISSION_DENIED


_BY_CODE: dict[int, type[VelocityError]] = {
    cls.code: cls
    for cls in (
        ProtocolError,
        BadCrcError,
        FrameTooLargeError,
        UnknownOpcodeError,
        NoAuthError,
        AuthFailedError,
        BusyError,
        WrongTypeError,
        OverflowError_,
        NotIntegerError,
        KeyTooLargeError,
        ValueTooLargeError,
        InvalidArgumentError,
        RedirectError,
        WritesRefusedError,
        ShuttingDownError,
        UnsupportedVersionError,
        TimeoutError_,
        InternalError,
        NotEnoughReplicasError,
        StaleEpochError,
        PermissionDeniedError,
    )
}

# Errors after which the server closes the connection.
FATAL_CODES = frozenset(
    {
        ErrorCode.PROTOCOL,
        ErrorCode.BAD_CRC,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.NOAUTH,
        ErrorCode.AUTH_FAILED,
        ErrorCode.BUSY,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.TIMEOUT,
    }
)


def error_from_wire(code: int, message: str, primary: str = "", retry_after_ms: int = 0) -> VelocityError:
    """Build the typed exception for a wire error code (unknown codes stay generic)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return VelocityError(message, primary=primary, retry_after_ms=retry_after_ms, code=ErrorCode.INTERNAL)
    return cls(message, primary=primary, retry_after_ms=retry_after_ms)
