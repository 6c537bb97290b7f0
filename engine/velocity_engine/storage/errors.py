"""Typed storage errors. Each names the file and offset it is about.

`StorageError` (base.py) means "this write was not made durable; writes are
refused from now on". `CorruptionError` means data on disk cannot be trusted:
at start-up it refuses to start, at run time a read fails loudly instead of
returning wrong data.
"""

from __future__ import annotations

from pathlib import Path

from velocity_engine.storage.base import StorageError


class CorruptionError(Exception):
    """Bytes on disk fail a checksum or do not parse."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path}: corrupt at offset {offset}: {reason}")


class WalWriteError(StorageError):
    """A write or fdatasync of the write-ahead log failed; nothing after it is acknowledged."""


class RestoreError(Exception):
    """A snapshot could not be restored (bad file, or a non-empty data directory)."""
