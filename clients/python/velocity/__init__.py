"""Velocity's Python SDK.

    from velocity import VelocityPool
"""

from vproto.errors import VelocityError

from velocity.connection import ConnectionClosedError, Endpoint
from velocity.durations import parse_ttl_ms
from velocity.pool import VelocityPool, read_token_file

__all__ = ["ConnectionClosedError", "Endpoint", "VelocityError", "VelocityPool", "parse_ttl_ms", "read_token_file"]
__version__ = "0.1.0"
