"""Reading WAL segments back, and telling a torn tail from corruption.

A crash can leave the end of the newest segment short (a write cut off) or
filled with zeros (the file grew but the data never reached the disk). Both
are a *torn tail*: the records before it were written in full, the partial
one was never acknowledged under `always` (its sync never completed), and it
is dropped with a warning. Anything else that fails a check - a bad record
followed by more data, or any damage in an older, fully synced segment - is
*corruption*: replay stops and the engine refuses to start (CorruptionError
names the file and offset; `velocity-engine check` explains it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from velocity_engine.storage.base import Mutation
from velocity_engine.storage.entry_codec import EntryFormatError, iter_entries
from velocity_engine.storage.errors import CorruptionError
from velocity_engine.storage.filenames import wal_name
from velocity_engine.storage.wal_format import (
    FILE_HEADER,
    FILE_HEADER_SIZE,
    MAGIC,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RECORD_TYPES,
    TYPE_BATCH,
    VERSION,
    header_crc,
)


@dataclass
class SegmentScan:
    """What one pass over a segment found.

    `batches` hold the mutations of every valid record in order; `valid_end`
    is the offset just past the last valid record; `problem` is None for a
    clean segment, else (offset, reason) of the first bad byte, and `torn`
    says whether that problem is a droppable torn tail.
    """

    path: Path
    size: int
    last: bool
    batches: list[list[Mutation]] = field(default_factory=list)
    valid_end: int = 0
    problem: tuple[int, str] | None = None
    torn: bool = False

    @property
    def dropped_bytes(self) -> int:
        return self.size - self.valid_end if self.problem is not None else 0


def scan_segment(path: Path, segment: int, *, last: bool) -> SegmentScan:
    """Read and check a whole segment. `last`: it is the newest one (a torn tail is possible)."""
    data = path.read_bytes()
    scan = SegmentScan(path, len(data), last)
    view = memoryview(data)
    if len(data) < FILE_HEADER_SIZE:
        _problem(scan, view, 0, "file header is incomplete", True)
        return scan
    magic, version, _reserved, number = FILE_HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        _problem(scan, view, 0, f"bad magic {bytes(magic)!r}, not a WAL segment", False)
        return scan
    if version != VERSION:
        _problem(scan, view, 0, f"unsupported WAL version {version} (this build reads {VERSION})", False)
        return scan
    if number != segment:
        _problem(scan, view, 0, f"header says segment {number}, file name says {segment}", False)
        return scan
    pos = FILE_HEADER_SIZE
    scan.valid_end = pos
    size = len(data)
    while pos < size:
        if size - pos < RECORD_HEADER_SIZE:
            _problem(scan, view, pos, "record header is cut off", True)
            return scan
        hcrc, length, rtype, pcrc = RECORD_HEADER.unpack_from(view, pos)
        if header_crc(length, rtype, pcrc) != hcrc:
            _problem(scan, view, pos, "record header checksum mismatch", False)
            return scan
        body = pos + RECORD_HEADER_SIZE
        if body + length > size:
            _problem(scan, view, pos, f"record of {length} bytes runs past the end of the file", True)
            return scan
        payload = view[body : body + length]
        if zlib.crc32(payload) != pcrc:
            _problem(scan, view, pos, "record payload checksum mismatch", body + length == size)
            return scan
        if rtype not in RECORD_TYPES:
            _problem(scan, view, pos, f"unknown record type {rtype}", False)
            return scan
        if rtype == TYPE_BATCH:
            try:
                scan.batches.append(list(iter_entries(payload)))
            except EntryFormatError as exc:
                _problem(scan, view, pos, f"batch does not parse ({exc}) although its checksum matches", False)
                return scan
        pos = body + length
        scan.valid_end = pos
    return scan


def _problem(scan: SegmentScan, view: memoryview, offset: int, reason: str, tail_shaped: bool) -> None:
    """Record the first bad byte. It is a torn tail only in the newest segment, and only
    if it looks like one: cut off at the end of the file (`tail_shaped`) or zeros to the
    end (the file grew but the data never reached the disk)."""
    scan.problem = (offset, reason)
    scan.torn = scan.last and (tail_shaped or not any(view[offset:]))


def replay(directory: Path, segments: list[int]) -> Iterator[tuple[int, SegmentScan]]:
    """Scan segments oldest first; raise CorruptionError on anything but a torn tail of the newest."""
    for i, number in enumerate(segments):
        scan = scan_segment(directory / wal_name(number), number, last=i == len(segments) - 1)
        if scan.problem is not None and not scan.torn:
            raise CorruptionError(scan.path, scan.problem[0], scan.problem[1])
        yield number, scan
