"""Secure by default: TLS 1.3 only, and nothing is served before a HELLO with the token."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from velocity import VelocityPool
from vproto import messages as m
from vproto.errors import AuthFailedError, ErrorCode
from vproto.frame import Opcode, encode_frame

from tests.support.engine_proc import EngineProcess
from tests.support.raw import RawConnection


@pytest.fixture(scope="module")
def secure_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("secure"), env={"VELOCITY_HANDSHAKE_TIMEOUT_S": "1"})
    with eng:
        yield eng


def auth_failures(eng: EngineProcess) -> float:
    found = re.search(r"^velocity_auth_failures_total (\S+)$", eng.metrics(), re.M)
    assert found, "velocity_auth_failures_total is not exported"
    return float(found.group(1))


def test_generated_material_and_its_permissions(secure_engine: EngineProcess) -> None:
    tls = secure_engine.data_dir / "tls"
    for name in ("ca.crt", "tls.crt", "tls.key"):
        assert (tls / name).is_file(), name
    assert stat.S_IMODE((tls / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(secure_engine.token_file.stat().st_mode) == 0o600
    assert len(secure_engine.token) >= 32
    log = secure_engine.log()
    assert str(tls / "ca.crt") in log and str(secure_engine.token_file) in log
    assert secure_engine.token not in log, "the token itself must never be logged"


def test_plaintext_client_gets_no_service(secure_engine: EngineProcess) -> None:
    with socket.create_connection(("127.0.0.1", secure_engine.port), timeout=5) as s:
        s.sendall(encode_frame(Opcode.HELLO, 0, m.HelloRequest(token=secure_engine.token).encode()))
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"VELO" not in received, "a plaintext client must never get a V-Proto reply"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2])
def test_tls_below_1_3_is_refused(secure_engine: EngineProcess, version: ssl.TLSVersion) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        RawConnection(secure_engine.port, secure_engine.ca, tls_version=version).hello(secure_engine.token)


def test_tls_1_3_with_the_generated_ca_verifies(secure_engine: EngineProcess) -> None:
    with RawConnection(secure_engine.port, secure_engine.ca) as c:
        assert c.sock.version() == "TLSv1.3"  # type: ignore[attr-defined]
        hello = c.hello(secure_engine.token)
        assert hello.protocol_version == 1 and hello.node_id


def test_untrusted_ca_is_rejected_by_the_client(secure_engine: EngineProcess, tmp_path: Path) -> None:
    other = EngineProcess(tmp_path / "other")
    with other:
        pass  # only its CA is needed: it is a different one
    with pytest.raises(ssl.SSLCertVerificationError):
        RawConnection(secure_engine.port, other.ca)


def test_wrong_token_is_answered_counted_and_closed(secure_engine: EngineProcess) -> None:
    before = auth_failures(secure_engine)
    with RawConnection(secure_engine.port, secure_engine.ca) as c:
        c.request(Opcode.HELLO, m.HelloRequest(token="wrong-" + secure_engine.token).encode())
        err = c.read_error()
        assert err.code == ErrorCode.AUTH_FAILED
        assert secure_engine.token not in err.message
        assert c.closed_by_server()
    assert auth_failures(secure_engine) == before + 1


def test_sdk_raises_a_typed_error_for_a_wrong_token(secure_engine: EngineProcess) -> None:
    async def go() -> None:
        vdb = VelocityPool(node=secure_engine.endpoint, auth="not-the-token", ca=str(secure_engine.ca))
        with pytest.raises(AuthFailedError):
            await vdb.connect()
        await vdb.close()

    asyncio.run(go())


@pytest.mark.parametrize("opcode", [Opcode.GET, Opcode.SET, Opcode.PING, Opcode.INFO])
def test_requests_before_hello_are_refused(secure_engine: EngineProcess, opcode: Opcode) -> None:
    with RawConnection(secure_engine.port, secure_engine.ca) as c:
        c.request(opcode, b"")
        assert c.read_error().code == ErrorCode.NOAUTH
        assert c.closed_by_server()


def test_silent_client_is_dropped_after_the_handshake_timeout(secure_engine: EngineProcess) -> None:
    with RawConnection(secure_engine.port, secure_engine.ca) as c:
        assert c.read_error().code == ErrorCode.TIMEOUT  # handshake timeout is 1 s here
        assert c.closed_by_server()


def test_unsupported_protocol_version(secure_engine: EngineProcess) -> None:
    with RawConnection(secure_engine.port, secure_engine.ca) as c:
        c.request(Opcode.HELLO, m.HelloRequest(protocol_version=99, token=secure_engine.token).encode())
        assert c.read_error().code == ErrorCode.UNSUPPORTED_VERSION
        assert c.closed_by_server()


def test_token_from_env_and_from_file(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "env", env={"VDB_TOKEN": "s3cret-from-env-0123456789abcdef"}) as eng:
        assert not eng.token_file.exists()
        with RawConnection(eng.port, eng.ca) as c:
            c.hello("s3cret-from-env-0123456789abcdef")
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789abcdef0123\n")
    eng = EngineProcess(tmp_path / "file", extra_args=["--auth-token-file", str(token_file)])
    with eng, RawConnection(eng.port, eng.ca) as c:  # eng is started by its __enter__
        c.hello("from-a-file-0123456789abcdef0123")


def test_insecure_mode_is_explicit_and_plaintext(insecure_engine: EngineProcess) -> None:
    async def go() -> dict[str, object]:
        async with insecure_engine.pool() as vdb:
            await vdb.set("k", "v")
            info = await vdb.info()
            return dict(info["server"])

    server = asyncio.run(go())
    assert server["tls"] is False and server["auth"] is False
    assert not (insecure_engine.data_dir / "tls").exists()
