"""Connection URLs and the VDB_* environment (velocity.config): what each form means and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from velocity.config import ClientConfig, parse_url, resolve
from velocity.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("vdb://db.example", {"endpoint": "vdb://db.example:2005"}),
        ("db.example:7000", {"endpoint": "vdb://db.example:7000"}),
        ("vdb://[::1]:7000", {"endpoint": "vdb://[::1]:7000"}),
        ("vdb://:s%2Fecret@h:1", {"endpoint": "vdb://h:1", "token": "s/ecret"}),
        ("vdb+insecure://h:1", {"endpoint": "vdb://h:1", "insecure": True}),
        ("vdb://h:1?insecure=0", {"endpoint": "vdb://h:1", "insecure": False}),
        ("vdb://h?ca=/x/ca.crt&token_file=/x/t&server_name=n", {
            "endpoint": "vdb://h:2005", "ca": "/x/ca.crt", "token_file": "/x/t", "server_name": "n"}),
        ("vdb://h?timeout=1.5&connect_timeout=0.5&pool_size=8&retries=0&retry_backoff=0.2", {
            "endpoint": "vdb://h:2005", "timeout": 1.5, "connect_timeout": 0.5, "pool_size": 8, "retries": 0,
            "retry_backoff": 0.2}),
    ],
)
def test_parse_url(url: str, expected: dict[str, object]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://h:1", "vdb://user:tok@h", "vdb://h:1/path", "vdb://h:port", "vdb://", "vdb://h?timeout=0",
     "vdb://h?timeout=soon", "vdb://h?pool_size=0", "vdb://h?insecure=maybe", "vdb://h?token=t", "vdb://h?retries=-1"],
)
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(url)


def test_precedence_arguments_over_url_over_environment() -> None:
    env = {"VDB_ENDPOINT": "vdb://env-host:1", "VDB_TOKEN": "env-token", "VDB_CA": "/env/ca", "VDB_TIMEOUT": "7"}
    assert resolve(None, {}, env) == ClientConfig(endpoint="vdb://env-host:1", token="env-token", ca="/env/ca",
                                                  timeout=7.0, connect_timeout=5.0)
    cfg = resolve("vdb://:url-token@url-host:2?timeout=3", {}, env)
    assert (cfg.endpoint, cfg.token, cfg.ca, cfg.timeout) == ("vdb://url-host:2", "url-token", "/env/ca", 3.0)
    cfg = resolve("vdb://:url-token@url-host:2?timeout=3", {"token": "arg", "timeout": 1.0, "ca": None}, env)
    assert (cfg.token, cfg.timeout, cfg.connect_timeout) == ("arg", 1.0, 1.0)  # connect timeout follows a short one


def test_a_url_token_file_replaces_an_environment_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    cfg = resolve(f"vdb://h?token_file={token}", {}, {"VDB_TOKEN": "from-env"})
    assert cfg.resolved_token() == "from-file"
    cfg = resolve(None, {}, {"VDB_TOKEN_FILE": str(token)})
    assert cfg.resolved_token() == "from-file"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        resolve(None, {"token_file": str(empty)}, {}).resolved_token()


def test_defaults_without_anything() -> None:
    cfg = resolve(None, {}, {})
    assert (cfg.endpoint, cfg.token, cfg.ca, cfg.timeout, cfg.connect_timeout, cfg.retries) == (
        "vdb://127.0.0.1:2005", None, None, 10.0, 5.0, 1)
