"""Velocity's Python SDK.

    from velocity import Velocity, VelocityPool

    vdb = Velocity.from_url()                  # synchronous, thread safe; VDB_ENDPOINT, VDB_CA, VDB_TOKEN[_FILE]
    async with VelocityPool.from_url() as vdb: # asyncio

Errors are all `velocity.VelocityError` subclasses (velocity.errors); see docs/python-sdk.md.
"""

from velocity.client import Velocity
from velocity.config import ClientConfig
from velocity.connection import Endpoint
from velocity.durations import parse_ttl_ms
from velocity.errors import (
    AuthError,
    AuthFailedError,
    BusyError,
    ClientError,
    ConfigurationError,
    ConnectionClosedError,
    ConnectionError,
    ErrorCode,
    InvalidArgumentError,
    KeyTooLargeError,
    NotEnoughReplicasError,
    NotIntegerError,
    OverflowError_,
    PermissionDeniedError,
    ProtocolError,
    RedirectError,
    ServerTimeoutError,
    ShuttingDownError,
    TimeoutError,
    TLSError,
    UnknownOutcomeError,
    ValueTooLargeError,
    VelocityError,
    WritesRefusedError,
    WriteTimeoutError,
    WrongTypeError,
)
from velocity.pipeline import AsyncPipeline, Pipeline
from velocity.pool import VelocityPool, read_token_file

__all__ = [
    "AsyncPipeline",
    "AuthError",
    "AuthFailedError",
    "BusyError",
    "ClientConfig",
    "ClientError",
    "ConfigurationError",
    "ConnectionClosedError",
    "ConnectionError",
    "Endpoint",
    "ErrorCode",
    "InvalidArgumentError",
    "KeyTooLargeError",
    "NotEnoughReplicasError",
    "NotIntegerError",
    "OverflowError_",
    "PermissionDeniedError",
    "Pipeline",
    "ProtocolError",
    "RedirectError",
    "ServerTimeoutError",
    "ShuttingDownError",
    "TLSError",
    "TimeoutError",
    "UnknownOutcomeError",
    "ValueTooLargeError",
    "Velocity",
    "VelocityError",
    "VelocityPool",
    "WriteTimeoutError",
    "WritesRefusedError",
    "WrongTypeError",
    "parse_ttl_ms",
    "read_token_file",
]
__version__ = "0.1.0"
