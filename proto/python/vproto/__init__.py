"""V-Proto: Velocity's wire protocol (frames, message bodies, error codes).

Normative specification: docs/formats/protocol.md. This package is shared by
the engine and the Python SDK; the Node.js and Rust SDKs implement the same
bytes and are checked against proto/vectors/.
"""

from vproto.errors import ErrorCode, VelocityError
from vproto.frame import (
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    TRAILER_SIZE,
    Compression,
    Consistency,
    FrameDecoder,
    FrameError,
    Opcode,
    encode_frame,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "PROTOCOL_VERSION",
    "TRAILER_SIZE",
    "Compression",
    "Consistency",
    "ErrorCode",
    "FrameDecoder",
    "FrameError",
    "Opcode",
    "VelocityError",
    "encode_frame",
]
