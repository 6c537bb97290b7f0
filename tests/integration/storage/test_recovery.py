"""Start-up against damaged data, the check tool, and durability as the default."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support.engine_proc import ENGINE, EngineProcess


def _set_many(eng: EngineProcess, n: int, prefix: str = "k") -> None:
    async def go() -> None:
        async with eng.pool(pool_size=1) as pool:
            for i in range(n):
                await pool.set(f"{prefix}{i}", i)

    asyncio.run(go())


def _wal_files(eng: EngineProcess) -> list[Path]:
    return sorted((eng.data_dir / "storage").glob("wal-*.log"))


def test_default_storage_is_durable_across_a_clean_restart(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "e") as eng:
        _set_many(eng, 50)
        assert eng.stop() == 0
        eng.start()
        assert eng.ctl("get", "k49").stdout == b"49\n"
        info = eng.ctl("info", "--json")
        assert b'"appendfsync":"everysec"' in info.stdout.replace(b" ", b"")


def test_corruption_in_the_middle_refuses_to_start_and_check_repairs(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=["--appendfsync", "always"])
    try:
        eng.start()
        _set_many(eng, 30)
        eng.kill()
        wal = _wal_files(eng)[-1]
        data = bytearray(wal.read_bytes())
        data[len(data) // 2] ^= 0xFF
        wal.write_bytes(bytes(data))
        eng.start(wait_ready=False)
        assert eng.proc is not None
        assert eng.proc.wait(20) == 3
        log = eng.log()
        assert "corrupt at offset" in log and wal.name in log and "velocity-engine check" in log

        check = subprocess.run([ENGINE, "check", "--data-dir", str(eng.data_dir)], capture_output=True, timeout=30)
        assert check.returncode == 1
        assert b"CORRUPT" in check.stdout and wal.name.encode() in check.stdout
        repair = subprocess.run(
            [ENGINE, "check", "--data-dir", str(eng.data_dir), "--repair"], capture_output=True, timeout=30
        )
        assert repair.returncode == 0, repair.stdout
        eng.start()
        assert eng.ctl("get", "k0").stdout == b"0\n"  # the prefix before the damage survives
        assert eng.ctl("get", "k29").returncode == 1  # what followed it is gone, not garbage
    finally:
        eng.kill()


def test_torn_tail_is_dropped_with_a_warning_and_a_metric(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=["--appendfsync", "always"])
    try:
        eng.start()
        _set_many(eng, 10)
        eng.kill()
        wal = _wal_files(eng)[-1]
        wal.write_bytes(wal.read_bytes()[:-5])
        eng.start()
        assert "dropping a torn tail" in eng.log()
        assert eng.ctl("get", "k8").stdout == b"8\n"
        assert eng.ctl("get", "k9").returncode == 1
        metrics = eng.metrics()
        line = next(x for x in metrics.splitlines() if x.startswith("velocity_wal_truncated_bytes "))
        assert float(line.split()[1]) > 0
    finally:
        eng.kill()


def test_memory_storage_stays_selectable(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "e", extra_args=["--storage", "memory"]) as eng:
        _set_many(eng, 3)
        eng.stop()
        eng.start()
        assert eng.ctl("get", "k1").returncode == 1
        assert not (eng.data_dir / "storage").exists()


def test_a_damaged_table_refuses_to_start_naming_it(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=["--memtable-bytes", "65536"])
    try:
        eng.start()
        _set_many(eng, 1500)
        assert eng.stop() == 0
        tables = sorted((eng.data_dir / "storage").glob("table-*.sst"))
        assert tables, "the load flushed at least one table"
        data = bytearray(tables[0].read_bytes())
        data[-20] ^= 0xFF  # in the footer
        tables[0].write_bytes(bytes(data))
        eng.start(wait_ready=False)
        assert eng.proc is not None and eng.proc.wait(20) == 3
        assert tables[0].name in eng.log() and "footer" in eng.log()
        check = subprocess.run([ENGINE, "check", "--data-dir", str(eng.data_dir)], capture_output=True, timeout=30)
        assert check.returncode == 1 and b"CORRUPT" in check.stdout
    finally:
        eng.kill()
