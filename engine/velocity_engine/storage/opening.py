"""Choosing and opening the configured storage for a server."""

from __future__ import annotations

import asyncio

from velocity_engine.config import EngineSettings
from velocity_engine.storage.base import Storage
from velocity_engine.storage.lsm import LsmOptions, LsmStorage
from velocity_engine.storage.memory import MemoryStorage


def open_storage(settings: EngineSettings) -> Storage:
    """`memory` is volatile (tests); `lsm` (the default) recovers DATA_DIR/storage.

    Raises CorruptionError when the data on disk cannot be trusted.
    """
    if settings.storage == "memory":
        return MemoryStorage()
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    opts = LsmOptions(
        appendfsync=settings.appendfsync,
        memtable_bytes=settings.memtable_bytes,
        block_cache_bytes=settings.block_cache_bytes,
        compaction_rate_bytes=settings.compaction_rate_bytes,
    )
    return LsmStorage(settings.data_dir, opts, loop)
