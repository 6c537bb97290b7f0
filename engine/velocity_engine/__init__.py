"""The Velocity engine: a V-Proto key-value server on asyncio + uvloop."""

__version__ = "0.1.0"
