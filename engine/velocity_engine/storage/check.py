"""`velocity-engine check [--repair]`: explain what is wrong with a data directory.

Run it on a stopped engine. It reads every WAL segment the way start-up
does and reports each problem with file, offset and whether start-up would
drop it (a torn tail) or refuse (corruption). `--repair` keeps the longest
clean prefix of the log: it truncates the damaged segment at the first bad
record and deletes newer segments, because a write after the damage may
depend on one inside it (MSET atomicity, INCR).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from velocity_engine.fsutil import fsync_dir
from velocity_engine.storage.filenames import storage_dir, wal_name, wal_numbers
from velocity_engine.storage.wal_format import FILE_HEADER_SIZE
from velocity_engine.storage.wal_reader import scan_segment


def check_data_dir(data_dir: Path, *, repair: bool, echo: Callable[[str], None]) -> bool:
    """True when start-up would succeed (after a repair, if one was asked for)."""
    sdir = storage_dir(data_dir)
    segments = wal_numbers(sdir)
    echo(f"{sdir}: {len(segments)} WAL segment(s)")
    ok = True
    for i, number in enumerate(segments):
        scan = scan_segment(sdir / wal_name(number), number, last=i == len(segments) - 1)
        records = sum(len(b) for b in scan.batches)
        if scan.problem is None:
            echo(f"  {scan.path.name}: ok, {len(scan.batches)} records, {records} entries, {scan.size} bytes")
            continue
        offset, reason = scan.problem
        verdict = "torn tail (start-up drops it with a warning)" if scan.torn else "CORRUPT (start-up refuses)"
        echo(f"  {scan.path.name}: {verdict} at offset {offset}: {reason}; "
             f"{scan.dropped_bytes} bytes from there, {len(scan.batches)} good records before it")
        if scan.torn:
            continue
        if not repair:
            ok = False
            later = segments[i + 1 :]
            if later:
                echo(f"  --repair would truncate {scan.path.name} at {offset} and delete {len(later)} newer segment(s)")
            else:
                echo(f"  --repair would truncate {scan.path.name} at {offset}")
            break
        _truncate(scan.path, scan.valid_end)
        for newer in segments[i + 1 :]:
            (sdir / wal_name(newer)).unlink()
            echo(f"  repair: deleted {wal_name(newer)}")
        fsync_dir(sdir)
        echo(f"  repair: truncated {scan.path.name} to {scan.valid_end} bytes")
        break
    echo("result: " + ("ok" if ok else "start-up would refuse; see above"))
    return ok


def _truncate(path: Path, size: int) -> None:
    if size < FILE_HEADER_SIZE:
        path.unlink()
        return
    with open(path, "r+b") as fh:
        fh.truncate(size)
        os.fsync(fh.fileno())
