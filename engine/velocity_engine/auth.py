"""Credentials: which tokens exist, where they come from, and what each may do.

Three roles, each with its own token (docs/security.md, protocol.md section 4.1):

- client: the data opcodes (GET ... SCAN) plus HELLO, PING, INFO;
- replication: REPL_* plus HELLO, PING, INFO (what a replica needs of its primary);
- admin: everything (PROMOTE, REPLICA_OF, SNAPSHOT_*, REPL_* and the data opcodes).

An optional read-only client token may run only the reading data opcodes.
A token is compared with every configured token in constant time, and all of
them are compared whatever matched first, so timing tells nothing about which.
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from vproto.frame import Opcode

from velocity_engine.fsutil import atomic_write

log = logging.getLogger(__name__)

MIN_TOKEN_LEN = 16


class TokenError(Exception):
    pass


class Role(enum.Enum):
    CLIENT = "client"
    READONLY = "readonly"
    REPLICATION = "replication"
    ADMIN = "admin"


_ANY = (Opcode.HELLO, Opcode.PING, Opcode.INFO)
_READS = (Opcode.GET, Opcode.EXISTS, Opcode.TTL, Opcode.MGET, Opcode.SCAN)
_WRITES = (
    Opcode.SET, Opcode.DEL, Opcode.INCR, Opcode.EXPIRE, Opcode.PERSIST, Opcode.CAS, Opcode.MSET,
)
_REPL = (Opcode.REPL_SYNC, Opcode.REPL_SNAPSHOT, Opcode.REPL_BATCHES, Opcode.REPL_HEARTBEAT, Opcode.REPL_ACK)
_ADMIN = (Opcode.PROMOTE, Opcode.REPLICA_OF, Opcode.SNAPSHOT_BEGIN, Opcode.SNAPSHOT_READ)


def _table(*groups: tuple[Opcode, ...]) -> bytes:
    allowed = bytearray(256)
    for group in groups:
        for op in group:
            allowed[op] = 1
    return bytes(allowed)


# Per role: a 256-entry table, 1 where the opcode is allowed (one index per request).
PERMISSIONS: dict[Role, bytes] = {
    Role.CLIENT: _table(_ANY, _READS, _WRITES),
    Role.READONLY: _table(_ANY, _READS),
    Role.REPLICATION: _table(_ANY, _REPL),
    Role.ADMIN: _table(_ANY, _READS, _WRITES, _REPL, _ADMIN),
}
# Before HELLO (with auth on): only HELLO gets past the role check.
UNAUTHENTICATED = _table((Opcode.HELLO,))
# --insecure: no tokens, every opcode.
EVERYTHING = bytes([1]) * 256


@dataclass(frozen=True)
class TokenSource:
    """Where one role's token comes from: an environment value, a file, or DATA_DIR/NAME."""

    role: Role
    env_name: str
    env_value: str | None
    file: Path | None
    default_name: str | None  # generated there when nothing else is given (None: optional role)


@dataclass(frozen=True)
class Credentials:
    tokens: dict[Role, str]
    paths: dict[Role, Path | None]  # None: from the environment

    def role_of(self, given: str) -> Role | None:
        """The role whose token `given` is, compared in constant time against every token."""
        found: Role | None = None
        raw = given.encode()
        for role, token in self.tokens.items():
            if hmac.compare_digest(token.encode(), raw) and found is None:
                found = role
        return found

    def token(self, role: Role) -> str | None:
        return self.tokens.get(role)


def load_credentials(data_dir: Path, sources: list[TokenSource]) -> Credentials:
    """Read or generate every role's token; distinct roles must have distinct tokens."""
    tokens: dict[Role, str] = {}
    paths: dict[Role, Path | None] = {}
    for src in sources:
        loaded = _load(data_dir, src)
        if loaded is None:
            continue
        tokens[src.role], paths[src.role] = loaded
    seen: dict[str, Role] = {}
    for role, token in tokens.items():
        if token in seen:
            raise TokenError(
                f"the {role.value} token is the same as the {seen[token].value} token: each role needs its own"
            )
        seen[token] = role
    return Credentials(tokens, paths)


def _load(data_dir: Path, src: TokenSource) -> tuple[str, Path | None] | None:
    if src.env_value:
        return _validated(src.env_value.strip(), src.env_name), None
    if src.file is not None:
        try:
            return _validated(src.file.read_text().strip(), str(src.file)), src.file
        except OSError as exc:
            raise TokenError(f"cannot read {src.role.value} token file {src.file}: {exc.strerror}") from None
    if src.default_name is None:
        return None
    path = data_dir / src.default_name
    if path.exists():
        return _validated(path.read_text().strip(), str(path)), path
    token = secrets.token_urlsafe(32)
    atomic_write(path, (token + "\n").encode(), mode=0o600)
    log.info("generated the %s token in %s", src.role.value, path)
    return token, path


def load_or_create_token(data_dir: Path, token_file: Path | None, env_token: str | None) -> tuple[str, Path | None]:
    """(client token, file it lives in). Precedence: VDB_TOKEN, --auth-token-file, DATA_DIR/auth-token."""
    loaded = _load(data_dir, TokenSource(Role.CLIENT, "VDB_TOKEN", env_token, token_file, "auth-token"))
    assert loaded is not None
    return loaded


def _validated(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LEN:
        raise TokenError(f"token from {where} is shorter than {MIN_TOKEN_LEN} characters")
    return token


def token_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
