"""Client settings: one place that reads connection URLs and the VDB_* environment.

URL scheme (documented in README.md, "The Python SDK"):

    vdb://[:TOKEN@]HOST[:PORT][?ca=PATH&token_file=PATH&timeout=S&connect_timeout=S
                               &server_name=NAME&pool_size=N&retries=N&retry_backoff=S]
    vdb+insecure://HOST[:PORT][?...]          plaintext, no token (also: vdb://...?insecure=1)

The token may be percent-encoded; a user name before the colon is refused (tokens
have no user). Precedence, highest first: keyword arguments, the URL, the
environment (VDB_ENDPOINT, VDB_TOKEN, VDB_TOKEN_FILE, VDB_CA, VDB_TIMEOUT,
VDB_CONNECT_TIMEOUT, VDB_INSECURE), the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from velocity.errors import ConfigurationError

DEFAULT_ENDPOINT = "vdb://127.0.0.1:2005"
DEFAULT_PORT = 2005
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 1
DEFAULT_RETRY_BACKOFF_S = 0.05

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to connect; see the module docstring for where each value comes from."""

    endpoint: str = DEFAULT_ENDPOINT  # vdb://HOST:PORT, nothing else
    token: str | None = None
    token_file: str | None = None
    ca: str | None = None
    insecure: bool = False
    server_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    pool_size: int | None = None
    retries: int = DEFAULT_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF_S

    def resolved_token(self) -> str | None:
        """The token, read from `token_file` when only the file was given."""
        if self.token is not None or self.token_file is None:
            return self.token
        return read_token_file(self.token_file)


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in `path` (surrounding whitespace removed); ConfigurationError names the file."""
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read token file {os.fspath(path)}: {exc.strerror or exc}") from None
    if not token:
        raise ConfigurationError(f"token file {os.fspath(path)} is empty")
    return token


def _float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {text!r}")
    return value


def _int(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {text!r}")
    return value


def parse_bool(name: str, text: str) -> bool:
    """1/true/yes/on or 0/false/no/off (any case)."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"{name}={text!r}: use 1 or 0")


_QUERY = {"ca", "token_file", "timeout", "connect_timeout", "server_name", "pool_size", "retries",
          "retry_backoff", "insecure"}


def parse_url(url: str) -> dict[str, Any]:
    """The settings a URL carries, as ClientConfig keyword arguments (only those it sets)."""
    if "://" not in url:
        url = "vdb://" + url
    parts = urlsplit(url)
    out: dict[str, Any] = {}
    if parts.scheme == "vdb+insecure":
        out["insecure"] = True
    elif parts.scheme != "vdb":
        raise ConfigurationError(f"endpoint {url!r}: the scheme is vdb:// or vdb+insecure://")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"endpoint {url!r}: a Velocity URL has no path")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigurationError(f"endpoint {url!r}: {exc}") from None
    if not host:
        raise ConfigurationError(f"endpoint {url!r} names no host")
    shown = f"[{host}]" if ":" in host else host
    out["endpoint"] = f"vdb://{shown}:{port or DEFAULT_PORT}"
    if parts.username:
        raise ConfigurationError(f"endpoint {url!r}: write the token as vdb://:TOKEN@HOST (no user name)")
    if parts.password:
        out["token"] = unquote(parts.password)
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in _QUERY:
            raise ConfigurationError(f"endpoint {url!r}: unknown parameter {key!r} (have {', '.join(sorted(_QUERY))})")
        out.update(_setting(key, values[-1]))
    return out


def _setting(key: str, text: str) -> dict[str, Any]:
    if key in ("timeout", "connect_timeout", "retry_backoff"):
        return {key: _float(key, text)}
    if key == "pool_size":
        return {key: _int(key, text, 1)}
    if key == "retries":
        return {key: _int(key, text, 0)}
    if key == "insecure":
        return {key: parse_bool(key, text)}
    return {key: text}


def from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the VDB_* environment carries, as ClientConfig keyword arguments."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    if env.get("VDB_ENDPOINT"):
        out.update(parse_url(env["VDB_ENDPOINT"]))
    if env.get("VDB_TOKEN"):
        out["token"] = env["VDB_TOKEN"].strip()
    elif env.get("VDB_TOKEN_FILE"):
        out["token_file"] = env["VDB_TOKEN_FILE"]
    if env.get("VDB_CA"):
        out["ca"] = env["VDB_CA"]
    if env.get("VDB_TIMEOUT"):
        out["timeout"] = _float("VDB_TIMEOUT", env["VDB_TIMEOUT"])
    if env.get("VDB_CONNECT_TIMEOUT"):
        out["connect_timeout"] = _float("VDB_CONNECT_TIMEOUT", env["VDB_CONNECT_TIMEOUT"])
    if env.get("VDB_INSECURE"):
        out["insecure"] = parse_bool("VDB_INSECURE", env["VDB_INSECURE"])
    return out


def resolve(url: str | None, overrides: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ClientConfig:
    """Combine keyword arguments (`overrides`, None meaning unset), `url` and the environment."""
    merged = from_env(env)
    if url is not None:
        from_url = parse_url(url)
        if "token" in from_url or "token_file" in from_url:
            merged.pop("token", None)
            merged.pop("token_file", None)
        merged.update(from_url)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "token" in given:
        merged.pop("token_file", None)
    merged.update(given)
    if "connect_timeout" not in merged:  # never longer than the request timeout unless asked
        merged["connect_timeout"] = min(DEFAULT_CONNECT_TIMEOUT_S, merged.get("timeout", DEFAULT_TIMEOUT_S))
    if "ca" in merged and merged["ca"] is not None:
        merged["ca"] = os.fspath(merged["ca"])
    cfg = ClientConfig(**merged)
    if cfg.timeout <= 0 or cfg.connect_timeout <= 0:
        raise ConfigurationError("timeout and connect_timeout must be positive")
    if cfg.retries < 0 or cfg.retry_backoff < 0:
        raise ConfigurationError("retries and retry_backoff cannot be negative")
    return cfg
