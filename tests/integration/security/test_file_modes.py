"""Issue 11, finding 6 (files): the engine's files are private to its user.

Every file the engine creates under its data directory is 0600 and every
directory 0700, whatever the umask: the engine runs here with umask 000, so
a file created "0644 minus the umask" would show up as 0666. Certificates
are public and may be 0644 (they sit in the 0700 tls/ directory). Checked
after writes, memtable flushes, a compaction, a snapshot and a restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.frame import Opcode

from tests.support.engine_proc import EngineProcess, wait_until
from tests.support.raw import RawConnection


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # inherited by the engine process
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
            except FileNotFoundError:  # removed while we walked (a WAL segment, a compacted table)
                continue
    return out


def wrong_modes(root: Path) -> list[str]:
    bad = []
    for rel, mode in modes(root).items():
        p = root / rel
        if p.is_dir():
            if mode != 0o700:
                bad.append(f"{rel}/ {mode:04o}")
        elif p.suffix == ".crt":
            if mode not in (0o600, 0o644):
                bad.append(f"{rel} {mode:04o}")
        elif mode != 0o600:
            bad.append(f"{rel} {mode:04o}")
    return bad


def metric(eng: EngineProcess, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", eng.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def snapshot_ready(eng: EngineProcess) -> str:
    path = eng.data_dir / "admin-token"
    token = path.read_text().strip() if path.exists() else eng.token
    with RawConnection(eng.port, eng.ca) as conn:
        conn.hello(token)
        conn.request(Opcode.SNAPSHOT_BEGIN, m.SnapshotBeginRequest().encode())
        op, _, body = conn.read_frame()
        assert op == Opcode.SNAPSHOT_BEGIN | 0x80, body
        snap_id = m.SnapshotBeginResponse.decode(body).snapshot_id

        def ready() -> bool:
            conn.request(Opcode.SNAPSHOT_READ, m.SnapshotReadRequest(snap_id, 0, 1).encode())
            op, _, body = conn.read_frame()
            assert op == Opcode.SNAPSHOT_READ | 0x80, body
            return m.SnapshotReadResponse.decode(body).ready

        wait_until(ready, 30, 0.05, "the snapshot file")
    return snap_id


def test_data_files_are_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    eng = EngineProcess(
        tmp_path / "e", env={"VELOCITY_MEMTABLE_BYTES": str(64 * 1024)}
    )
    with eng:
        value = os.urandom(2000)

        async def write(base: int, n: int) -> None:
            async with eng.pool(pool_size=2) as pool:
                for i in range(base, base + n, 50):
                    await pool.mset({f"k:{j:06d}": value for j in range(i, i + 50)})

        asyncio.run(write(0, 200))
        assert wrong_modes(eng.data_dir) == [], "after the first writes"
        asyncio.run(write(200, 3000))  # 6 MB through a 64 KiB memtable: flushes, then a compaction
        wait_until(lambda: metric(eng, "velocity_memtable_flushes_total") >= 5, 30, 0.1, "memtable flushes")
        wait_until(lambda: metric(eng, "velocity_compactions_total") >= 1, 60, 0.1, "a compaction")
        assert wrong_modes(eng.data_dir) == [], "after flushes and a compaction"
        snapshot_ready(eng)
        files = modes(eng.data_dir / "storage" / "snapshots")
        assert any(k.endswith(".vsnap") for k in files), files
        assert wrong_modes(eng.data_dir) == [], "with a snapshot file"
        assert eng.stop() == 0
        eng.start()  # a restart rewrites state files (manifest, node state)
        asyncio.run(write(3200, 100))
        assert wrong_modes(eng.data_dir) == [], "after a restart"
        names = list(modes(eng.data_dir))
        for wanted in ("storage/CURRENT", "storage/MANIFEST-", "storage/wal-", "storage/table-", "node-id", "tls/"):
            assert any(n.startswith(wanted) for n in names), f"no {wanted} in {names}"  # a populated tree
