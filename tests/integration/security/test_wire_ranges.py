"""Finding 1 (critical) and 6: epochs, sequence numbers and TTLs from the wire are range-checked.

Before: a REPL_SYNC with node_epoch 2^64-1 deposed the primary for good; a
PROMOTE that pushed the epoch to 2^64 made every SET answer INTERNAL, also
after a restart; a TTL of 2^63-1 ms answered INTERNAL. Now each is refused
with INVALID_ARGUMENT and nothing is stored (docs/replication.md, "Epochs a
node adopts"; protocol.md, TTLs).
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

U64_MAX = 2**64 - 1


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path / "e") as e:
        yield e


@pytest.fixture
def repl_eng(tmp_path: Path) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path / "e") as e:
        yield e


def _code(c: RawConnection, opcode: int, body: bytes) -> int:
    c.request(opcode, body)
    op, _, reply = c.read_frame()
    return 0 if op == opcode | 0x80 else int(m.ErrorResponse.decode(reply).code)


def _set_works(eng: EngineProcess) -> None:
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.token)
        assert _code(c, Opcode.SET, m.SetRequest(b"after", b"ok", ValueKind.BYTES).encode()) == 0


def _repl_token(eng: EngineProcess) -> str:
    return (eng.data_dir / "replication-token").read_text().strip()


@pytest.mark.parametrize("field", ["node_epoch", "epoch", "seq"])
def test_repl_sync_with_huge_epoch_or_seq_is_refused_and_does_not_depose(repl_eng: EngineProcess, field: str) -> None:
    eng = repl_eng
    req = m.ReplSyncRequest(node_id="attacker", endpoint="vdb://127.0.0.1:1", **{field: U64_MAX})
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(_repl_token(eng))
        assert _code(c, Opcode.REPL_SYNC, req.encode()) == ErrorCode.INVALID_ARGUMENT
    _set_works(eng)
    info = eng.ctl("info", "--json", check=True).stdout.decode()
    assert '"role":"primary"' in info.replace(" ", "")


@pytest.mark.parametrize("min_epoch", [U64_MAX, 2**53 - 1])
def test_promote_to_an_epoch_out_of_range_is_refused_and_survives_restart(
    repl_eng: EngineProcess, min_epoch: int
) -> None:
    eng = repl_eng
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.admin_token)
        assert _code(c, Opcode.PROMOTE, m.PromoteRequest(min_epoch).encode()) == ErrorCode.INVALID_ARGUMENT
        assert _code(c, Opcode.PROMOTE, m.PromoteRequest(0).encode()) == 0  # the documented fix still works
    _set_works(eng)
    eng.kill()
    eng.start()
    _set_works(eng)


def test_replica_of_with_huge_epoch_is_refused(repl_eng: EngineProcess) -> None:
    eng = repl_eng
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.admin_token)
        req = m.ReplicaOfRequest("vdb://127.0.0.1:1", U64_MAX)
        assert _code(c, Opcode.REPLICA_OF, req.encode()) == ErrorCode.INVALID_ARGUMENT
    _set_works(eng)


@pytest.mark.parametrize("ttl_ms", [2**63 - 1, 2**53])
def test_huge_ttl_is_invalid_argument_and_not_stored(eng: EngineProcess, ttl_ms: int) -> None:
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.token)
        set_req = m.SetRequest(b"t", b"v", ValueKind.BYTES, ttl_ms=ttl_ms).encode()
        assert _code(c, Opcode.SET, set_req) == ErrorCode.INVALID_ARGUMENT
        c.request(Opcode.GET, m.KeyRequest(b"t").encode())
        op, _, body = c.read_frame()
        assert op == Opcode.GET | 0x80 and not m.GetResponse.decode(body).found
        assert _code(c, Opcode.SET, m.SetRequest(b"t", b"v", ValueKind.BYTES).encode()) == 0
        assert _code(c, Opcode.EXPIRE, m.ExpireRequest(b"t", ttl_ms).encode()) == ErrorCode.INVALID_ARGUMENT
        entry = m.Entry(key=b"u", found=True, kind=ValueKind.BYTES, value=b"v", ttl_ms=ttl_ms)
        assert _code(c, Opcode.MSET, m.MSetRequest([entry]).encode()) == ErrorCode.INVALID_ARGUMENT
        # The largest accepted TTL works.
        ok = m.SetRequest(b"t", b"v", ValueKind.BYTES, ttl_ms=2**53 - 1).encode()
        assert _code(c, Opcode.SET, ok) == 0
