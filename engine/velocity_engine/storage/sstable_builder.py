"""Writing one immutable SSTable from sorted entries.

Used by the flush thread and the compaction thread; touches nothing shared.
The file is fsync'ed by `finish()` but only becomes part of the database when
the manifest naming it is published (a crash before that leaves an orphan
that start-up deletes). Its directory entry is made durable by the directory
fsync of that publication, which comes after `finish()`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from velocity_engine.storage.base import Record
from velocity_engine.storage.bloom import build_filter
from velocity_engine.storage.entry_codec import encode_entry
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.sstable_format import BLOCK_TARGET, FOOTER, FOOTER_CHECKED, INDEX_TAIL, MAGIC, U32, VERSION

WRITE_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TableInfo:
    """What the manifest records about a finished table."""

    number: int
    size: int
    entries: int
    smallest: bytes
    largest: bytes


class SSTableBuilder:
    """add() keys in strictly increasing order, then finish() once."""

    def __init__(
        self, path: Path, number: int, throttle: Callable[[int], None] | None = None, ops: FileOps | None = None,
    ) -> None:
        self.path = path
        self.number = number
        self._ops = ops or FileOps()
        self._fd: int | None = self._ops.create(path)  # closed in finish()/abort()
        self._out = bytearray()  # written in WRITE_CHUNK pieces: one syscall per ~16 blocks
        self._throttle = throttle
        self._block = bytearray()
        self._offsets: list[int] = []
        self._keys: list[bytes] = []
        self._index = bytearray()
        self._pos = 0
        self._last: bytes | None = None
        self._smallest = b""

    @property
    def bytes_written(self) -> int:
        return self._pos

    def add(self, key: bytes, rec: Record | None) -> None:
        if self._last is not None and key <= self._last:
            raise ValueError("SSTable keys must be added in strictly increasing order")
        if self._last is None:
            self._smallest = key
        self._offsets.append(len(self._block))
        encode_entry(key, rec, self._block)
        self._keys.append(key)
        self._last = key
        if len(self._block) >= BLOCK_TARGET:
            self._flush_block()

    def _flush_block(self) -> None:
        if not self._offsets:
            return
        blk = self._block
        for off in self._offsets:
            blk += U32.pack(off)
        blk += U32.pack(len(self._offsets))
        blk += U32.pack(zlib.crc32(blk))
        assert self._last is not None
        self._index += U32.pack(len(self._last)) + self._last + INDEX_TAIL.pack(self._pos, len(blk))
        self._write(bytes(blk))
        self._block = bytearray()
        self._offsets = []

    def _write(self, data: bytes) -> None:
        self._out += data
        if len(self._out) >= WRITE_CHUNK:
            self._drain()
        self._pos += len(data)
        if self._throttle is not None:
            self._throttle(len(data))

    def _drain(self) -> None:
        assert self._fd is not None, "write after finish()/abort()"
        self._ops.write_all(self._fd, self._out)
        self._out = bytearray()

    def finish(self) -> TableInfo:
        self._flush_block()
        filt = build_filter(self._keys)
        filter_off = self._pos
        self._write(filt + U32.pack(zlib.crc32(filt)))
        index_off = self._pos
        self._write(bytes(self._index) + U32.pack(zlib.crc32(self._index)))
        head = FOOTER.pack(index_off, self._pos - index_off, filter_off, index_off - filter_off,
                           len(self._keys), VERSION, 0, MAGIC)[:FOOTER_CHECKED]
        footer = head + U32.pack(zlib.crc32(head)) + MAGIC
        assert len(footer) == FOOTER.size
        self._write(footer)
        self._drain()
        assert self._fd is not None
        self._ops.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        return TableInfo(self.number, self._pos, len(self._keys), self._smallest, self._last or b"")

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._ops.unlink(self.path)
