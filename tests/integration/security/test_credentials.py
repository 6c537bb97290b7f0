"""Finding 1 (critical): a client token could run admin and replication opcodes.

Roles (docs/security.md): the client token runs the data opcodes; the admin
token also PROMOTE, REPLICA_OF and SNAPSHOT_*; the replication token only
REPL_* (plus HELLO, PING, INFO); an optional read-only token only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode
from vproto.values import ValueKind

from tests.support.engine_proc import EngineProcess
from tests.support.raw import RawConnection

READONLY = "read-only-token-0123456789abcdef"


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[EngineProcess]:
    (tmp_path / "ro-token").write_text(READONLY + "\n")
    args = ["--readonly-token-file", str(tmp_path / "ro-token")]
    with EngineProcess(tmp_path / "e", extra_args=args) as e:
        yield e


def _raw(eng: EngineProcess, token: str) -> RawConnection:
    c = RawConnection(eng.port, eng.ca)
    c.hello(token)
    return c


def _code(c: RawConnection, opcode: int, body: bytes) -> int:
    """0 when the request succeeded, else the error code."""
    c.request(opcode, body)
    op, _, reply = c.read_frame()
    return 0 if op == opcode | 0x80 else int(m.ErrorResponse.decode(reply).code)


ADMIN_REQUESTS = [
    (Opcode.PROMOTE, m.PromoteRequest(0).encode()),
    (Opcode.REPLICA_OF, m.ReplicaOfRequest("vdb://127.0.0.1:1", 0).encode()),
    (Opcode.SNAPSHOT_BEGIN, m.SnapshotBeginRequest().encode()),
    (Opcode.REPL_SYNC, m.ReplSyncRequest(node_id="x", endpoint="vdb://127.0.0.1:1", node_epoch=2**64 - 1).encode()),
]


@pytest.mark.parametrize(("opcode", "body"), ADMIN_REQUESTS, ids=lambda v: getattr(v, "name", ""))
def test_client_token_cannot_run_admin_or_replication_opcodes(eng: EngineProcess, opcode: int, body: bytes) -> None:
    with _raw(eng, eng.token) as c:
        assert _code(c, opcode, body) == ErrorCode.PERMISSION_DENIED
        # Not fatal, and nothing changed: the primary still takes writes.
        assert _code(c, Opcode.SET, m.SetRequest(b"k", b"v", ValueKind.BYTES).encode()) == 0


def test_admin_token_runs_admin_opcodes_and_data(eng: EngineProcess) -> None:
    with _raw(eng, eng.admin_token) as c:
        assert _code(c, Opcode.SET, m.SetRequest(b"k", b"v", ValueKind.BYTES).encode()) == 0
        assert _code(c, Opcode.SNAPSHOT_BEGIN, m.SnapshotBeginRequest().encode()) == 0


def test_replication_token_cannot_touch_data(eng: EngineProcess) -> None:
    token = (eng.data_dir / "replication-token").read_text().strip()
    with _raw(eng, token) as c:
        assert _code(c, Opcode.PING, m.PingRequest(b"x").encode()) == 0
        assert _code(c, Opcode.SET, m.SetRequest(b"k", b"v", ValueKind.BYTES).encode()) == ErrorCode.PERMISSION_DENIED
        assert _code(c, Opcode.GET, m.KeyRequest(b"k").encode()) == ErrorCode.PERMISSION_DENIED
        assert _code(c, Opcode.PROMOTE, m.PromoteRequest(0).encode()) == ErrorCode.PERMISSION_DENIED


def test_readonly_token_reads_only(eng: EngineProcess) -> None:
    with _raw(eng, eng.token) as c:
        assert _code(c, Opcode.SET, m.SetRequest(b"k", b"v", ValueKind.BYTES).encode()) == 0
    with _raw(eng, READONLY) as c:
        assert _code(c, Opcode.GET, m.KeyRequest(b"k").encode()) == 0
        assert _code(c, Opcode.SET, m.SetRequest(b"k", b"w", ValueKind.BYTES).encode()) == ErrorCode.PERMISSION_DENIED
        assert _code(c, Opcode.INCR, m.IncrRequest(b"n", 1).encode()) == ErrorCode.PERMISSION_DENIED


def test_generated_tokens_are_distinct_and_private(eng: EngineProcess) -> None:
    files = [eng.data_dir / n for n in ("auth-token", "admin-token", "replication-token")]
    tokens = {f.read_text().strip() for f in files}
    assert len(tokens) == 3
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600


def test_one_token_for_two_roles_is_refused_at_start(tmp_path: Path) -> None:
    tok = tmp_path / "same"
    tok.write_text("the-same-token-for-both-roles\n")
    e = EngineProcess(tmp_path / "e", extra_args=["--auth-token-file", str(tok), "--admin-token-file", str(tok)])
    with pytest.raises(RuntimeError, match="each role needs its own"):
        e.start(timeout=15)
    e.kill()
