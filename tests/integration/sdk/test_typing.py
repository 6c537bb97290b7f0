"""mypy --strict passes on a user's script that uses both clients (the SDK ships py.typed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

USER_SCRIPT = '''
from __future__ import annotations

import asyncio
from typing import Any

import velocity
from velocity import UnknownOutcomeError, Velocity, VelocityPool


def sync_part() -> int:
    with Velocity.from_url("vdb://127.0.0.1:2005?ca=ca.crt&timeout=2") as vdb:
        ok: bool = vdb.set("k", {"a": 1}, ttl="2h", nx=True)
        value: Any = vdb.get("k", default=None, stale_ok=True)
        values: list[Any] = vdb.mget(["k", b"raw"])
        vdb.mset({"a": 1, "b": "two"}, ttl=30)
        keys: list[str] = list(vdb.scan("k", count=10))
        left: float | None = vdb.ttl("k")
        batch: list[Any] = vdb.pipeline().get("k").incr("n").set("s", b"v").execute()
        try:
            n: int = vdb.incr("counter", 2)
        except UnknownOutcomeError:
            n = -1
        except velocity.TimeoutError as exc:
            print(exc.message)
            n = -2
        print(ok, value, values, keys, left, batch)
        return n


async def async_part() -> bool:
    async with VelocityPool("vdb://127.0.0.1:2005", auth="t", ca="ca.crt", timeout=1.0, connect_timeout=0.5,
                            retries=2, retry_backoff=0.1) as vdb:
        applied: bool = await vdb.cas("k", None, b"bytes")
        async for key in vdb.scan(b"k"):
            print(key.upper())
        info: dict[str, Any] = await vdb.info("server")
        async with vdb.pipeline(raise_on_error=False) as pipe:
            results: list[Any] = await pipe.get("a").exists("b").execute()
        print(info, results)
        try:
            return await vdb.delete("k")
        except (velocity.ConnectionError, velocity.AuthError, velocity.TLSError) as exc:
            print(exc)
            return applied


if __name__ == "__main__":
    sync_part()
    asyncio.run(async_part())
'''


def test_mypy_strict_accepts_a_user_script_using_both_clients(tmp_path: Path) -> None:
    script = tmp_path / "user_app.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    env = {"MYPYPATH": f"{ROOT / 'clients/python'}:{ROOT / 'proto/python'}", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary",
         "--follow-imports", "silent", str(script)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_catches_a_misuse(tmp_path: Path) -> None:
    """The check can fail: a wrong call is reported."""
    script = tmp_path / "bad_app.py"
    script.write_text("from velocity import Velocity\n\nn: str = Velocity().incr('k', by='one')\n")
    env = {"MYPYPATH": f"{ROOT / 'clients/python'}:{ROOT / 'proto/python'}", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--follow-imports", "silent", str(script)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert r.returncode == 1 and "incr" in r.stdout, r.stdout + r.stderr
