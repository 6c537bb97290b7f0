"""The native data plane over LSM storage (issue 13, stage 2a): durability, upgrade, shell.

The protocol behaviour of LSM engines is covered by the engine, security, storage and cli
suites under VELOCITY_TEST_DATA_PLANE=native; these tests cover what is particular to the
core's storage: acknowledged writes (and values shown to readers) surviving SIGKILL under
`always`, a data directory the Python engine wrote opening natively, the live
`appendfsync` reload reaching the core, and the storage metric names the dashboards use.
The read-hold rule with a WAL sync held back is tested in engine/core/src/lsm_store.rs.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from velocity import UnknownOutcomeError

from tests.support.engine_proc import ENGINE, EngineProcess, wait_until

try:  # a missing core is a failure, not a skip: `make test-native` builds it first
    import velocity_engine._core  # noqa: F401
except ImportError as exc:
    raise RuntimeError(f"the native data plane is not built ({exc}): run make native") from exc

NATIVE = ["--data-plane", "native", "--storage", "lsm"]
PYTHON = ["--data-plane", "python", "--storage", "lsm"]
WRITERS = 6
ROUNDS = 8


def info(eng: EngineProcess) -> dict[str, Any]:
    return dict(json.loads(eng.ctl("info", "--json", check=True).stdout))


async def _load_then_kill(
    eng: EngineProcess, rnd: int, kill_after: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Writers SET keys while readers GET them; SIGKILL after `kill_after` acks.

    Returns {key: newest acknowledged value} and {key: newest value a reader was shown}.
    """
    acked: dict[str, int] = {}
    seen: dict[str, int] = {}
    acks = [0]
    pool = eng.pool(pool_size=4, timeout=5.0)
    await pool.connect()
    keys = [f"r{rnd}:w{w}:{i}" for w in range(WRITERS) for i in range(30)]

    async def writer(w: int) -> None:
        i = 0
        while True:
            i += 1
            key = f"r{rnd}:w{w}:{i % 30}"
            await pool.set(key, i)
            acked[key] = i
            acks[0] += 1

    async def reader(r: int) -> None:
        rng = random.Random(r)
        while True:
            key = rng.choice(keys)
            v = await pool.get(key)
            if v is not None:
                seen[key] = max(seen.get(key, 0), int(v))

    tasks = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
    tasks += [asyncio.create_task(reader(r)) for r in range(2)]
    deadline = time.monotonic() + 30
    while acks[0] < kill_after and not any(t.done() for t in tasks):
        assert time.monotonic() < deadline, f"only {acks[0]} writes acknowledged in 30 s"
        await asyncio.sleep(0.001)
    eng.kill()
    for r in await asyncio.gather(*tasks, return_exceptions=True):
        assert isinstance(r, (UnknownOutcomeError, ConnectionError, OSError, TimeoutError)), repr(r)
    await pool.close()
    return acked, seen


async def _read_back(eng: EngineProcess, keys: list[str]) -> dict[str, int | None]:
    async with eng.pool(pool_size=1) as pool:
        got: dict[str, int | None] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            got.update(zip(chunk, await pool.mget(chunk), strict=True))
        return got


def test_sigkill_under_always_loses_no_acknowledged_write_nor_shown_value(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=[*NATIVE, "--appendfsync", "always", "--memtable-bytes", "65536"])
    rng = random.Random(13)
    must: dict[str, int] = {}
    try:
        for rnd in range(ROUNDS):
            eng.start()
            acked, seen = asyncio.run(_load_then_kill(eng, rnd, rng.randrange(50, 600)))
            for source in (acked, seen):
                for k, v in source.items():
                    must[k] = max(must.get(k, 0), v)
            eng.start()
            got = asyncio.run(_read_back(eng, list(must)))
            lost = {k: (v, g) for k, v in must.items() if (g := got[k]) is None or g < v}
            assert not lost, f"round {rnd}: acknowledged or shown values lost: {list(lost.items())[:10]}"
            d = info(eng)
            assert d["server"]["data_plane"] == "native" and d["storage"]["engine"] == "lsm"
            assert d["persistence"]["appendfsync"] == "always"
            eng.kill()
    finally:
        eng.kill()


def test_a_data_dir_the_python_engine_wrote_opens_natively(tmp_path: Path) -> None:
    """Tables, a WAL tail left by SIGKILL, TTLs and deletes: all there on the native plane."""
    base = tmp_path / "e"
    py = EngineProcess(base, extra_args=[*PYTHON, "--memtable-bytes", "65536"])
    expected: dict[str, str] = {}

    async def write_python() -> None:
        async with py.pool() as vdb:
            for i in range(3000):
                await vdb.set(f"k{i:05d}", f"value-{i}-" + "x" * 40)
                expected[f"k{i:05d}"] = f"value-{i}-" + "x" * 40
            for i in range(0, 3000, 7):
                await vdb.delete(f"k{i:05d}")
                del expected[f"k{i:05d}"]
            await vdb.set("ttl", "t", ttl="1h")
            for _ in range(5):
                await vdb.incr("n")

    py.start()
    try:
        asyncio.run(write_python())
        assert info(py)["storage"]["sstables"] >= 1, "the fixture should have tables as well as a WAL"
    finally:
        py.kill()
    assert (base / "data" / "storage").is_dir()

    native = EngineProcess(base, extra_args=NATIVE)

    async def check_native() -> None:
        async with native.pool() as vdb:
            keys = sorted(expected)
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                assert await vdb.mget(chunk) == [expected[k] for k in chunk]
            assert await vdb.get("k00000") is None
            assert 0 < await vdb.pttl("ttl") <= 3_600_000
            assert await vdb.incr("n") == 6
            scanned = [k async for k in vdb.scan("k")]
            assert scanned == keys

    async def again() -> None:
        async with native.pool() as vdb:
            assert await vdb.get("n") == 6
            assert await vdb.get("k00001") == expected["k00001"]

    try:
        native.start()
        asyncio.run(check_native())
        d = info(native)
        assert d["server"]["data_plane"] == "native"
        assert d["keys"] == len(expected) + 2
        assert native.stop() == 0, native.log()
        # And again after the native engine wrote to it (now in WAL format 2).
        native.start()
        asyncio.run(again())
    finally:
        native.kill()


def test_appendfsync_reload_reaches_the_core(tmp_path: Path) -> None:
    conf = tmp_path / "velocity.toml"
    conf.write_text('appendfsync = "everysec"\n')
    with EngineProcess(tmp_path / "e", extra_args=[*NATIVE, "--config", str(conf)]) as eng:
        assert info(eng)["persistence"]["appendfsync"] == "everysec"
        conf.write_text('appendfsync = "always"\n')
        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: info(eng)["persistence"]["appendfsync"] == "always", what="the reload to reach the core")
        assert eng.ctl("set", "k", "v").returncode == 0
        assert info(eng)["persistence"]["fsyncs"] >= 1


STORAGE_FAMILIES = re.compile(
    r"^# TYPE (velocity_(?:wal|sstable|memtable|compaction|bloom|block_cache|writes_refused)\w*) ", re.M
)


def test_storage_metric_names_are_the_python_engines(tmp_path: Path) -> None:
    """Every storage family the dashboards and alerts read is exported by both planes."""
    names: dict[str, set[str]] = {}
    for plane, args in (("python", PYTHON), ("native", NATIVE)):
        with EngineProcess(tmp_path / plane, extra_args=args) as eng:
            assert eng.ctl("set", "k", "v").returncode == 0
            names[plane] = set(STORAGE_FAMILIES.findall(eng.metrics()))
    assert len(names["python"]) >= 14
    assert names["native"] == names["python"]


def test_check_and_repair_a_data_dir_the_native_engine_wrote(tmp_path: Path) -> None:
    """WAL version 2 goes to velocity-lsm's checker (the Python one reads version 1 only)."""
    eng = EngineProcess(tmp_path / "e", extra_args=[*NATIVE, "--appendfsync", "always"])
    with eng:

        async def write() -> None:
            async with eng.pool() as vdb:
                for i in range(200):
                    await vdb.set(f"k{i:03d}", i)

        asyncio.run(write())
    sdir = eng.data_dir / "storage"
    seg = max(sdir.glob("wal-*.log"), key=lambda p: p.stat().st_size)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF  # mid-log: records follow the damage
    seg.write_bytes(bytes(data))

    r = subprocess.run([ENGINE, "check", "--data-dir", str(eng.data_dir)], capture_output=True, timeout=30)
    assert r.returncode == 1 and b"CORRUPT" in r.stdout and b"version 2" not in r.stderr, r
    started = eng.start(wait_ready=False)
    assert started.proc is not None and started.proc.wait(30) == 3, eng.log()
    r = subprocess.run([ENGINE, "check", "--repair", "--data-dir", str(eng.data_dir)], capture_output=True, timeout=30)
    assert r.returncode == 0, r

    async def first_keys() -> None:
        async with eng.pool() as vdb:
            assert await vdb.get("k000") == 0

    try:
        eng.start()
        assert 0 < info(eng)["keys"] < 200, "the log was cut at the damage, what precedes it is kept"
        asyncio.run(first_keys())
    finally:
        eng.kill()
