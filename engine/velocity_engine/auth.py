"""The auth token: where it comes from and how it is checked."""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from velocity_engine.fsutil import atomic_write

log = logging.getLogger(__name__)

MIN_TOKEN_LEN = 16


class TokenError(Exception):
    pass


def load_or_create_token(data_dir: Path, token_file: Path | None, env_token: str | None) -> tuple[str, Path | None]:
    """(token, file it lives in). Precedence: VDB_TOKEN, --auth-token-file, DATA_DIR/auth-token."""
    if env_token:
        return _validated(env_token.strip(), "VDB_TOKEN"), None
    if token_file is not None:
        try:
            return _validated(token_file.read_text().strip(), str(token_file)), token_file
        except OSError as exc:
            raise TokenError(f"cannot read token file {token_file}: {exc.strerror}") from None
    path = data_dir / "auth-token"
    if path.exists():
        return _validated(path.read_text().strip(), str(path)), path
    token = secrets.token_urlsafe(32)
    atomic_write(path, (token + "\n").encode(), mode=0o600)
    log.info("generated an auth token in %s", path)
    return token, path


def _validated(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LEN:
        raise TokenError(f"token from {where} is shorter than {MIN_TOKEN_LEN} characters")
    return token


def token_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
