"""Both clients against a real engine (TLS + token): the sync client in a plain script
and in threads, from_url and the VDB_* environment, and errors that name their cause."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import velocity
import vproto.errors
from velocity import AuthError, ConfigurationError, TLSError, Velocity, VelocityPool

from tests.support.engine_proc import EngineProcess


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("clients")) as e:
        yield e


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the engine's certificate (another engine's)."""
    other = EngineProcess(tmp_path_factory.mktemp("other-ca"))
    with other:
        pass
    return other.ca


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
    env.update(extra)
    return env


def test_sync_client_in_a_plain_script(eng: EngineProcess) -> None:
    script = textwrap.dedent("""
        import sys
        from velocity import Velocity

        with Velocity(sys.argv[1], auth=sys.argv[2], ca=sys.argv[3]) as vdb:
            assert vdb.set("script:k", {"n": 1}, ttl="1h") is True
            assert vdb.get("script:k") == {"n": 1}
            assert vdb.incr("script:c", 5) == 5 and vdb.decr("script:c") == 4
            vdb.mset({"script:a": "x", "script:b": b"y"})
            assert vdb.mget(["script:a", "script:b", "script:none"]) == ["x", b"y", None]
            assert vdb.cas("script:a", "x", "z") and not vdb.cas("script:a", "x", "w")
            assert sorted(vdb.scan("script:")) == ["script:a", "script:b", "script:c", "script:k"]
            assert vdb.exists("script:a") and vdb.delete("script:a") and not vdb.exists("script:a")
            assert 3590 < vdb.ttl("script:k") <= 3600 and vdb.persist("script:k") and vdb.pttl("script:k") == -1
            assert vdb.expire("script:k", "30s") and vdb.ping(b"hi") == b"hi"
            assert vdb.info("server")["server"]["tls"] is True
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script, eng.endpoint, eng.token, str(eng.ca)],
                       capture_output=True, env=clean_env(), timeout=60)
    assert r.returncode == 0 and r.stdout == b"ok\n", r.stderr.decode()


def test_sync_client_shared_by_threads_counts_exactly(eng: EngineProcess) -> None:
    threads, per_thread = 8, 100
    vdb = Velocity(eng.endpoint, auth=eng.token, ca=eng.ca, pool_size=4)
    seen: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            mine = [vdb.incr("threads:counter") for _ in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            seen.extend(mine)

    running = [threading.Thread(target=work) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(60)
    assert not errors
    total = threads * per_thread
    assert sorted(seen) == list(range(1, total + 1))  # every increment observed a distinct state
    assert vdb.get("threads:counter") == total
    assert len(vdb._idle) <= 4  # at most pool_size idle sockets are kept
    vdb.close()


def test_from_url_with_token_ca_and_timeouts(eng: EngineProcess) -> None:
    token = urllib.parse.quote(eng.token, safe="")
    url = f"vdb://:{token}@127.0.0.1:{eng.port}?ca={eng.ca}&timeout=3&connect_timeout=2&pool_size=2"
    vdb = Velocity.from_url(url)
    assert (vdb.timeout, vdb.connect_timeout, vdb.pool_size) == (3.0, 2.0, 2)
    assert vdb.set("url:k", 1) and vdb.get("url:k") == 1

    async def go() -> object:
        async with VelocityPool.from_url(url) as pool:
            assert pool.pool_size == 2 and pool.timeout == 3.0
            return await pool.get("url:k")

    assert asyncio.run(go()) == 1
    via_file = Velocity.from_url(f"vdb://127.0.0.1:{eng.port}?ca={eng.ca}&token_file={eng.token_file}")
    assert via_file.get("url:k") == 1
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        Velocity.from_url("vdb://127.0.0.1:1?tiemout=3")
    with pytest.raises(ConfigurationError, match="token file"):
        Velocity.from_url(f"vdb://127.0.0.1:{eng.port}?token_file=/nonexistent/token")


def test_from_url_plaintext(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "insecure", insecure=True) as plain:
        for url in (f"vdb+insecure://127.0.0.1:{plain.port}", f"vdb://127.0.0.1:{plain.port}?insecure=1"):
            vdb = Velocity.from_url(url)
            assert vdb.set("plain", "yes") and vdb.get("plain") == "yes"
            vdb.close()


def test_no_arguments_read_the_environment(eng: EngineProcess) -> None:
    script = textwrap.dedent("""
        import asyncio
        from velocity import Velocity, VelocityPool

        sync = Velocity()
        sync.set("env:k", "from-env")

        async def main():
            async with VelocityPool() as pool:
                return await pool.get("env:k")

        print(asyncio.run(main()), Velocity.from_url().get("env:k"))
    """)
    env = clean_env(VDB_ENDPOINT=eng.endpoint, VDB_CA=str(eng.ca), VDB_TOKEN_FILE=str(eng.token_file),
                    VDB_TIMEOUT="4")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == b"from-env from-env\n", r.stderr.decode()
    env = clean_env(VDB_ENDPOINT=eng.endpoint, VDB_CA=str(eng.ca), VDB_TOKEN=eng.token)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_missing_ca_file_is_named(eng: EngineProcess, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.crt"
    with pytest.raises(TLSError, match=str(missing)) as info:
        VelocityPool(eng.endpoint, auth=eng.token, ca=missing)
    assert "No such file" in str(info.value)
    with pytest.raises(TLSError, match=str(missing)):
        Velocity(eng.endpoint, auth=eng.token, ca=missing)


def test_wrong_ca_raises_tls_error_with_the_hint(eng: EngineProcess, other_ca: Path) -> None:
    async def go() -> None:
        async with VelocityPool(eng.endpoint, auth=eng.token, ca=other_ca):
            pass

    with pytest.raises(TLSError) as info:
        asyncio.run(go())
    text = str(info.value)
    assert str(other_ca) in text and "--ca or VDB_CA" in text and "certificate" in text
    assert isinstance(info.value, velocity.ConnectionError) and isinstance(info.value, ConnectionError)
    with pytest.raises(TLSError, match="VDB_CA"):
        Velocity(eng.endpoint, auth=eng.token, ca=other_ca).ping()


def test_wrong_token_is_an_auth_error_from_both_clients(eng: EngineProcess) -> None:
    with pytest.raises(AuthError):
        Velocity(eng.endpoint, auth="wrong-token", ca=eng.ca).get("k")

    async def go() -> None:
        async with VelocityPool(eng.endpoint, auth="wrong-token", ca=eng.ca):
            pass

    with pytest.raises(vproto.errors.AuthFailedError):  # the same class: old code keeps working
        asyncio.run(go())


def test_unreachable_server_is_a_connection_error(tmp_path: Path) -> None:
    from tests.support.engine_proc import free_port

    vdb = Velocity(f"vdb://127.0.0.1:{free_port()}", insecure=True, timeout=2, retry_backoff=0.01)
    with pytest.raises(velocity.ConnectionError, match="cannot connect"):
        vdb.get("k")


def test_server_errors_keep_their_codes(eng: EngineProcess) -> None:
    vdb = Velocity(eng.endpoint, auth=eng.token, ca=eng.ca)
    vdb.set("word", "abc")
    with pytest.raises(velocity.NotIntegerError) as info:
        vdb.incr("word")
    assert info.value.code == velocity.ErrorCode.NOT_INTEGER
    assert isinstance(info.value, velocity.VelocityError)


def test_every_exported_error_is_a_velocity_error() -> None:
    for name in velocity.__all__:
        obj = getattr(velocity, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, velocity.VelocityError), name
    assert velocity.AuthError is vproto.errors.AuthFailedError
    assert velocity.VelocityError is vproto.errors.VelocityError
    assert issubclass(velocity.TimeoutError, TimeoutError) and issubclass(velocity.ConnectionError, ConnectionError)


def test_sync_admin_call_with_the_admin_token(eng: EngineProcess, tmp_path: Path) -> None:
    """Admin calls of the sync client run on a private loop, also from a thread with a running loop."""
    dest = tmp_path / "sync.vsnap"
    admin = Velocity(eng.endpoint, auth=eng.admin_token, ca=eng.ca)

    async def from_a_running_loop() -> int:
        return admin.snapshot(dest)  # as a notebook cell would call it

    size = asyncio.run(from_a_running_loop())
    assert size == dest.stat().st_size > 0
    with pytest.raises(velocity.PermissionDeniedError):
        Velocity(eng.endpoint, auth=eng.token, ca=eng.ca).snapshot(tmp_path / "refused.vsnap")
    assert not (tmp_path / "refused.vsnap").exists()


def test_pipelines_against_the_engine(eng: EngineProcess) -> None:
    vdb = Velocity(eng.endpoint, auth=eng.token, ca=eng.ca)
    with vdb.pipeline() as pipe:
        pipe.set("pipe:a", 1).incr("pipe:a", 4).get("pipe:a").mset({"pipe:b": "x"}).mget(["pipe:a", "pipe:b"])
        assert len(pipe) == 5
        assert pipe.execute() == [True, 5, 5, None, [5, "x"]]
    pipe = vdb.pipeline(raise_on_error=False).incr("pipe:b").get("pipe:b")
    failed, value = pipe.execute()
    assert isinstance(failed, velocity.NotIntegerError) and value == "x"
    with pytest.raises(velocity.NotIntegerError):
        vdb.pipeline().incr("pipe:b").get("pipe:b").execute()
    assert vdb.pipeline().execute() == []

    async def go() -> list[object]:
        async with VelocityPool(eng.endpoint, auth=eng.token, ca=eng.ca) as pool, pool.pipeline() as apipe:
            for _ in range(100):
                apipe.incr("pipe:counter")
            return await apipe.execute()

    assert asyncio.run(go()) == list(range(1, 101))
