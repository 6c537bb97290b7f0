"""Settings precedence (flags > environment > config file > defaults) and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from velocity_engine.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VELOCITY_") or name == "VDB_TOKEN":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "velocity.toml"
    p.write_text(text)
    return p


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({"data_dir": tmp_path})
    assert (s.host, s.port, s.metrics_port, s.insecure) == ("127.0.0.1", 2005, 9105, False)


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, 'data-dir = "/from/file"\nport = 3000\nmetrics_port = 3001\nmax_connections = 7\n')
    monkeypatch.setenv("VELOCITY_PORT", "4000")
    monkeypatch.setenv("VELOCITY_METRICS_PORT", "4001")
    s = load_settings({"port": 5000, "metrics_port": None}, cfg)
    assert s.port == 5000  # flag
    assert s.metrics_port == 4001  # env beats file
    assert s.max_connections == 7  # file beats default
    assert s.data_dir == Path("/from/file")


def test_vdb_token_env_is_read_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDB_TOKEN", "tok-0123456789abcdef0123456789abcdef")
    s = load_settings({"data_dir": tmp_path})
    assert s.token == "tok-0123456789abcdef0123456789abcdef"
    assert "tok-0123" not in repr(s) and "token" not in s.model_dump()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 70000}, "port"),
        ({"tls_cert": "/a.crt"}, "together"),
        ({"insecure": True, "auth_token_file": "/t"}, "insecure"),
        ({"max_frame_bytes": 1024 * 1024, "max_value_bytes": 2 * 1024 * 1024}, "fit"),
        ({}, "data_dir"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"data_dir": tmp_path, **overrides} if "data_dir" not in str(message) else overrides)


def test_bad_config_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"data_dir": tmp_path}, write(tmp_path, "port = = 3"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({"data_dir": tmp_path}, tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="port"):
        load_settings({"data_dir": tmp_path}, write(tmp_path, 'port = "many"\n'))
