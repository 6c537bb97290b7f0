"""Snapshot files: one portable, checksummed file holding every live key at one instant.

    snapshot := header chunk* end
    header   := magic "VSNAPSH1" | version:u32 | reserved:u32 | created_ms:i64 | reserved:u64   (32 bytes)
    chunk    := length:u32 (> 0) | crc:u32 | entries[length]          crc: CRC-32 of the entries
    end      := zero:u32 | entry_count:u64 | file_crc:u32 | magic "VSNAPEND"
    file_crc := CRC-32 of every byte before it

Entries are entry_codec PUT entries in strictly increasing key order; no
tombstones and no values already expired at `created_ms`. Normative spec:
docs/formats/snapshot.md. Restore turns the sorted stream straight into
SSTables, so it costs one sequential write of the data.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from velocity_engine.storage.base import Record
from velocity_engine.storage.entry_codec import EntryFormatError, encode_entry, iter_entries
from velocity_engine.storage.errors import RestoreError
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import storage_dir, table_name, wal_numbers
from velocity_engine.storage.manifest import ManifestState, TableMeta, publish, read_current
from velocity_engine.storage.sstable_builder import SSTableBuilder

MAGIC = b"VSNAPSH1"
END_MAGIC = b"VSNAPEND"
VERSION = 1
HEADER = struct.Struct("<8sIIqQ")  # 32
CHUNK_HEAD = struct.Struct("<II")
U32 = struct.Struct("<I")
END = struct.Struct("<IQI8s")  # zero, entry_count, file_crc, magic (24)
CHUNK_TARGET = 64 * 1024
RESTORE_TABLE_BYTES = 64 * 1024 * 1024
RESTORED_MARKER = "RESTORED_FROM"  # identity of the snapshot a data dir was restored from
RESTORE_TIER = 8  # restored tables are large; keep them out of the small tiers' merges


@dataclass(frozen=True)
class SnapshotInfo:
    size: int
    entries: int
    created_ms: int


class _CrcWriter:
    def __init__(self, fd: int, ops: FileOps) -> None:
        self.fd = fd
        self.ops = ops
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        self.ops.write_all(self.fd, data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


def write_snapshot(
    path: Path, entries: Iterable[tuple[bytes, Record | None]], created_ms: int, ops: FileOps | None = None,
) -> SnapshotInfo:
    """Write live, unexpired entries (sorted input) to path, fsync'ed (its name is not: see the exporter)."""
    ops = ops or FileOps()
    count = 0
    fd = ops.create(path)
    try:
        w = _CrcWriter(fd, ops)
        head = HEADER.pack(MAGIC, VERSION, 0, created_ms, 0)
        assert len(head) == 32
        w.write(head)
        chunk = bytearray()
        for key, rec in entries:
            if rec is None or (rec.expire_at_ms and rec.expire_at_ms <= created_ms):
                continue
            encode_entry(key, rec, chunk)
            count += 1
            if len(chunk) >= CHUNK_TARGET:
                w.write(CHUNK_HEAD.pack(len(chunk), zlib.crc32(chunk)) + bytes(chunk))
                chunk = bytearray()
        if chunk:
            w.write(CHUNK_HEAD.pack(len(chunk), zlib.crc32(chunk)) + bytes(chunk))
        tail = struct.pack("<IQ", 0, count)
        w.write(tail)
        ops.write_all(fd, struct.pack("<I", w.crc) + END_MAGIC)
        ops.fsync(fd)
        size = w.size + 12
    finally:
        os.close(fd)
    return SnapshotInfo(size, count, created_ms)


def read_snapshot(path: Path) -> Iterator[tuple[bytes, Record]]:
    """Yield the entries, checking every chunk; raise RestoreError on any damage.

    The whole-file CRC is checked at the end: a consumer must not commit what
    it built until the iterator finishes without raising.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise RestoreError(f"cannot read snapshot {path}: {exc.strerror}") from None
    try:
        crc = 0

        def take(n: int, what: str) -> bytes:
            nonlocal crc
            data = fh.read(n)
            if len(data) != n:
                raise RestoreError(f"{path}: truncated in the {what} at offset {fh.tell() - len(data)}")
            crc = zlib.crc32(data, crc)
            return data

        magic, version, _r, _created, _r2 = HEADER.unpack(take(HEADER.size, "header"))
        if magic != MAGIC:
            raise RestoreError(f"{path}: not a Velocity snapshot (magic {magic!r})")
        if version != VERSION:
            raise RestoreError(f"{path}: snapshot version {version}, this build reads {VERSION}")
        count = 0
        last: bytes | None = None
        while True:
            offset = fh.tell()
            (length,) = U32.unpack(take(4, "chunk header"))
            if length == 0:
                break  # the end marker
            (chunk_crc,) = U32.unpack(take(4, "chunk header"))
            body = take(length, "chunk")
            if zlib.crc32(body) != chunk_crc:
                raise RestoreError(f"{path}: chunk at offset {offset} fails its checksum")
            try:
                for key, rec in iter_entries(body):
                    if rec is None or (last is not None and key <= last):
                        raise RestoreError(f"{path}: chunk at offset {offset} breaks key order or holds a tombstone")
                    last = key
                    count += 1
                    yield key, rec
            except EntryFormatError as exc:
                raise RestoreError(f"{path}: chunk at offset {offset} does not parse: {exc}") from None
        (declared,) = struct.unpack("<Q", take(8, "trailer"))
        expect = crc
        tail = fh.read(12)
        if len(tail) != 12 or tail[4:] != END_MAGIC:
            raise RestoreError(f"{path}: trailer is missing or damaged")
        if struct.unpack("<I", tail[:4])[0] != expect:
            raise RestoreError(f"{path}: whole-file checksum mismatch")
        if declared != count:
            raise RestoreError(f"{path}: trailer says {declared} entries, found {count}")
        if fh.read(1):
            raise RestoreError(f"{path}: bytes after the trailer")
    finally:
        fh.close()


def restore_snapshot(snapshot: Path, data_dir: Path, ops: FileOps | None = None) -> SnapshotInfo:
    """Build tables + manifest in an empty data dir from a snapshot (start-up, before storage opens).

    Crash-safe: CURRENT is published last, after the marker, so a data dir
    with a CURRENT always says which snapshot it came from, and one without
    is restored again from scratch (leftover tables are overwritten or
    removed as orphans).
    """
    ops = ops or FileOps()
    sdir = storage_dir(data_dir)
    marker = sdir / RESTORED_MARKER
    identity = _identity(snapshot)
    if read_current(sdir) is not None or wal_numbers(sdir):
        if marker.exists() and marker.read_text().strip() == identity:
            # A restart with the same --restore-from: the data came from it; keep what was written since.
            return SnapshotInfo(snapshot.stat().st_size, 0, 0)
        raise RestoreError(f"--restore-from needs an empty data directory; {sdir} already holds data")
    ops.make_dirs(sdir)
    tables: list[TableMeta] = []
    built: list[Path] = []
    number = 1
    count = 0
    builder: SSTableBuilder | None = None
    try:
        for key, rec in read_snapshot(snapshot):
            if builder is None:
                path = sdir / table_name(number)
                built.append(path)
                builder = SSTableBuilder(path, number, ops=ops)
            builder.add(key, rec)
            count += 1
            if builder.bytes_written >= RESTORE_TABLE_BYTES:
                info = builder.finish()
                tables.append(TableMeta(number, RESTORE_TIER, info.size, info.entries, info.smallest, info.largest))
                builder = None
                number += 1
        if builder is not None:
            info = builder.finish()
            tables.append(TableMeta(number, RESTORE_TIER, info.size, info.entries, info.smallest, info.largest))
            number += 1
    except BaseException:
        if builder is not None:
            builder.abort()
        for p in built:
            ops.unlink(p)
        raise
    # The marker before CURRENT: a restore cut short between the two used to
    # leave a complete database without its marker, which the next start with
    # the same --restore-from refused as "not empty" (found by the power-loss test).
    ops.publish(marker, (identity + "\n").encode())
    state = ManifestState(next_file=number + 1, log_number=number + 1, live_keys=count, tables=tables)
    publish(sdir, number, state, ops)
    return SnapshotInfo(snapshot.stat().st_size, count, 0)


def _identity(snapshot: Path) -> str:
    """Size and whole-file CRC: names a snapshot file's content."""
    size = snapshot.stat().st_size
    with open(snapshot, "rb") as fh:
        fh.seek(max(0, size - 12))
        tail = fh.read(4)
    return f"{size} {tail.hex()}"
