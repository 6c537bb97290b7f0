"""Every file-naming rule of the data directory, in one place.

    DATA_DIR/storage/
        CURRENT                 name of the live manifest
        MANIFEST-000007         the table set (manifest.py)
        wal-000012.log          write-ahead log segments (wal_format.py)
        table-000010.sst        SSTables (sstable_builder.py)
        snapshots/              snapshot files being served (snapshot.py)

Numbers come from one counter (the manifest's next_file), so a number is
never reused within a data directory.
"""

from __future__ import annotations

import re
from pathlib import Path

STORAGE_DIR = "storage"
CURRENT = "CURRENT"
_WAL = re.compile(r"^wal-(\d{6,})\.log$")
_TABLE = re.compile(r"^table-(\d{6,})\.sst$")
_MANIFEST = re.compile(r"^MANIFEST-(\d{6,})$")


def storage_dir(data_dir: Path) -> Path:
    return data_dir / STORAGE_DIR


def wal_name(number: int) -> str:
    return f"wal-{number:06d}.log"


def table_name(number: int) -> str:
    return f"table-{number:06d}.sst"


def manifest_name(number: int) -> str:
    return f"MANIFEST-{number:06d}"


def _numbers(directory: Path, pattern: re.Pattern[str]) -> list[int]:
    if not directory.is_dir():
        return []
    out = []
    for entry in directory.iterdir():
        m = pattern.match(entry.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def wal_numbers(directory: Path) -> list[int]:
    return _numbers(directory, _WAL)


def table_numbers(directory: Path) -> list[int]:
    return _numbers(directory, _TABLE)


def manifest_numbers(directory: Path) -> list[int]:
    return _numbers(directory, _MANIFEST)


def snapshot_dir(directory: Path) -> Path:
    return directory / "snapshots"
