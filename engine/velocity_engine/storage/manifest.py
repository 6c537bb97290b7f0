"""The manifest: which tables make up the database, and where WAL replay starts.

    MANIFEST-NNNNNN := magic "VMANIFST" | version:u32 | length:u32 | body[length] | crc:u32
    crc  := CRC-32 of every byte before it
    body := UTF-8 JSON {"next_file", "log_number", "live_keys", "tables": [
                {"number", "tier", "size", "entries", "smallest", "largest"}]}   (keys hex)
    CURRENT := "MANIFEST-NNNNNN\\n"

Every change (a flush, a compaction) publishes a complete new manifest under
a new number and then CURRENT, each by write-temp, fsync, rename,
fsync-directory (FileOps.publish). A crash leaves either the old or the
new CURRENT, each naming a complete manifest. Spec: docs/formats/manifest.md.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from velocity_engine.storage.errors import CorruptionError
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.filenames import CURRENT, manifest_name

MAGIC = b"VMANIFST"
VERSION = 1
_HEAD = struct.Struct("<8sII")


@dataclass(frozen=True)
class TableMeta:
    number: int
    tier: int
    size: int
    entries: int
    smallest: bytes
    largest: bytes


@dataclass
class ManifestState:
    next_file: int = 1
    log_number: int = 0  # WAL segments below this are fully in tables
    live_keys: int = 0  # live key count of the state the tables hold
    tables: list[TableMeta] = field(default_factory=list)  # oldest first


def encode_manifest(state: ManifestState) -> bytes:
    body = json.dumps({
        "next_file": state.next_file,
        "log_number": state.log_number,
        "live_keys": state.live_keys,
        "tables": [
            {"number": t.number, "tier": t.tier, "size": t.size, "entries": t.entries,
             "smallest": t.smallest.hex(), "largest": t.largest.hex()}
            for t in state.tables
        ],
    }, separators=(",", ":")).encode()
    head = _HEAD.pack(MAGIC, VERSION, len(body)) + body
    out = head + struct.pack("<I", zlib.crc32(head))
    assert len(out) == _HEAD.size + len(body) + 4
    return out


def decode_manifest(path: Path, data: bytes) -> ManifestState:
    if len(data) < _HEAD.size + 4:
        raise CorruptionError(path, 0, "manifest is shorter than its header")
    magic, version, length = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptionError(path, 0, f"bad magic {magic!r}, not a manifest")
    if version != VERSION:
        raise CorruptionError(path, 8, f"unsupported manifest version {version}")
    end = _HEAD.size + length
    if end + 4 != len(data):
        raise CorruptionError(path, 12, f"length {length} does not match the file size {len(data)}")
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise CorruptionError(path, end, "manifest checksum mismatch")
    try:
        obj = json.loads(data[_HEAD.size : end])
        return ManifestState(
            next_file=int(obj["next_file"]),
            log_number=int(obj["log_number"]),
            live_keys=int(obj["live_keys"]),
            tables=[
                TableMeta(int(t["number"]), int(t["tier"]), int(t["size"]), int(t["entries"]),
                          bytes.fromhex(t["smallest"]), bytes.fromhex(t["largest"]))
                for t in obj["tables"]
            ],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(path, _HEAD.size, f"manifest body does not parse: {exc}") from None


def read_current(directory: Path) -> tuple[int, ManifestState] | None:
    """The live manifest's number and state, or None for a fresh directory."""
    try:
        name = (directory / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    if not name.startswith("MANIFEST-") or not name[9:].isdigit():
        raise CorruptionError(directory / CURRENT, 0, f"CURRENT names {name!r}, not a manifest")
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptionError(directory / CURRENT, 0, f"CURRENT names {name}, which does not exist") from None
    return int(name[9:]), decode_manifest(path, data)


def publish(directory: Path, number: int, state: ManifestState, ops: FileOps | None = None) -> None:
    """Write MANIFEST-number, then point CURRENT at it (both crash-atomic).

    The manifest's directory entry is durable (publish fsyncs the directory)
    before CURRENT can name it, and so is every table file created in the
    directory before this call: that one directory fsync covers them.
    """
    ops = ops or FileOps()
    ops.publish(directory / manifest_name(number), encode_manifest(state))
    ops.publish(directory / CURRENT, (manifest_name(number) + "\n").encode())
