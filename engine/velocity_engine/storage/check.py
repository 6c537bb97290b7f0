"""`velocity-engine check [--repair]`: explain what is wrong with a data directory.

Run it on a stopped engine. It checks the manifest and every block of every
table it names (damage there is not repairable: restore from a snapshot),
then reads every WAL segment the way start-up
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
from velocity_engine.storage.errors import CorruptionError
from velocity_engine.storage.filenames import manifest_name, storage_dir, table_name, wal_name, wal_numbers
from velocity_engine.storage.manifest import read_current
from velocity_engine.storage.sstable_reader import SSTable
from velocity_engine.storage.wal_format import FILE_HEADER_SIZE
from velocity_engine.storage.wal_format import VERSION as WAL_VERSION
from velocity_engine.storage.wal_reader import scan_segment


def written_natively(sdir: Path) -> bool:
    """True when a WAL segment in `sdir` has a version above this build's (the native
    engine writes version 2): this checker must not judge, let alone repair, it."""
    for n in wal_numbers(sdir):
        try:
            with open(sdir / wal_name(n), "rb") as f:
                head = f.read(FILE_HEADER_SIZE)
        except OSError:
            continue
        if len(head) >= 6 and head[:4] == b"VWAL" and int.from_bytes(head[4:6], "little") > WAL_VERSION:
            return True
    return False


def check_data_dir(data_dir: Path, *, repair: bool, echo: Callable[[str], None]) -> bool:
    """True when start-up would succeed (after a repair, if one was asked for)."""
    sdir = storage_dir(data_dir)
    log_number = 0
    try:
        cur = read_current(sdir)
    except CorruptionError as exc:
        echo(f"  manifest: CORRUPT: {exc} (not repairable here: restore from a snapshot)")
        echo("result: start-up would refuse; see above")
        return False
    if cur is None:
        echo(f"{sdir}: no manifest yet (no table flushed)")
    else:
        number, state = cur
        log_number = state.log_number
        echo(f"{sdir}: {manifest_name(number)}: {len(state.tables)} table(s), WAL replay from segment {log_number}")
        bad_table = False
        for meta in state.tables:
            path = sdir / table_name(meta.number)
            try:
                table = SSTable(path, meta.number, None)
                try:
                    n = table.verify()
                finally:
                    table.close()
                echo(f"  {path.name}: ok, tier {meta.tier}, {n} entries, {meta.size} bytes")
            except (CorruptionError, OSError) as exc:
                echo(f"  {path.name}: CORRUPT: {exc} (not repairable here: restore from a snapshot)")
                bad_table = True
        if bad_table:
            echo("result: tables are damaged; start-up or reads would fail")
            return False
    segments = [s for s in wal_numbers(sdir) if s >= log_number]
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
