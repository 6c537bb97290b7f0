"""The engine config ConfigMap: valid for the engine's own settings model."""

from __future__ import annotations

import tomllib
from pathlib import Path

from velocity_engine.config import load_settings
from velocity_operator.builders import config
from velocity_operator.builders.meta import Owner

from .conftest import make_spec


def test_config_map_is_owned_named_and_labelled(owner: Owner) -> None:
    cm = config.config_map(owner, make_spec())
    assert cm["metadata"]["name"] == "alpha-config"
    assert cm["metadata"]["namespace"] == "prod"
    ref = cm["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "VelocityCluster" and ref["uid"] == owner.uid and ref["controller"] is True
    assert cm["metadata"]["labels"]["app.kubernetes.io/instance"] == "alpha"


def test_tls_config_points_at_the_mounted_secrets(owner: Owner) -> None:
    data = tomllib.loads(config.config_map(owner, make_spec())["data"][config.CONFIG_KEY])
    assert data["tls_cert"] == "/etc/velocity/tls/tls.crt"
    assert data["tls_key"] == "/etc/velocity/tls/tls.key"
    assert data["auth_token_file"] == "/etc/velocity/auth/token"
    assert data["admin_token_file"] == "/etc/velocity/admin/token"
    assert data["replication_token_file"] == "/etc/velocity/replication/token"
    assert data["port"] == 2005 and data["metrics_port"] == 9105
    assert data["host"] == "0.0.0.0" and "insecure" not in data


def test_engine_accepts_the_generated_file(owner: Owner, tmp_path: Path) -> None:
    """The engine forbids unknown keys: the file must load with its real settings model."""
    spec = make_spec(config={"logLevel": "DEBUG", "maxConnections": 50, "appendfsync": "always",
                             "dataPlane": "python"})
    path = tmp_path / "velocity.toml"
    path.write_text(config.config_map(owner, spec)["data"][config.CONFIG_KEY])
    settings = load_settings({}, path)
    assert settings.log_level == "DEBUG"
    assert settings.max_connections == 50
    assert settings.data_plane == "python"
    assert settings.port == 2005
    assert str(settings.tls_cert) == "/etc/velocity/tls/tls.crt"
    assert str(settings.admin_token_file) == "/etc/velocity/admin/token"
    assert str(settings.replication_token_file) == "/etc/velocity/replication/token"


def test_insecure_when_tls_disabled(owner: Owner, tmp_path: Path) -> None:
    path = tmp_path / "velocity.toml"
    path.write_text(config.config_map(owner, make_spec(tls={"enabled": False}))["data"][config.CONFIG_KEY])
    settings = load_settings({}, path)
    assert settings.insecure is True and settings.tls_cert is None and settings.auth_token_file is None
    assert settings.admin_token_file is None and settings.replication_token_file is None


def test_existing_clusters_roll_to_the_split_credentials(owner: Owner) -> None:
    """A cluster configured before issue 11 had no admin/replication token files: the new
    keys change the config hash, so its pods roll (one at a time) onto the mounted tokens."""
    current = config.config_map(owner, make_spec())
    before = tomllib.loads(current["data"][config.CONFIG_KEY])
    del before["admin_token_file"], before["replication_token_file"]
    old = {"data": {config.CONFIG_KEY: config.render_toml(before)}}
    assert config.config_hash(old) != config.config_hash(current)


def test_hash_changes_with_restart_only_config_only(owner: Owner) -> None:
    base = config.config_hash(config.config_map(owner, make_spec()))
    assert base == config.config_hash(config.config_map(owner, make_spec(replicas=3)))
    assert base != config.config_hash(config.config_map(owner, make_spec(config={"maxValueBytes": 7})))
    # Moving a cluster from the Python data plane to the native one is a rolling restart.
    python = config.config_hash(config.config_map(owner, make_spec(config={"dataPlane": "python"})))
    native = config.config_hash(config.config_map(owner, make_spec(config={"dataPlane": "native"})))
    assert len({base, python, native}) == 3
    # Live keys are applied by the running engines (test_config_live_reload.py).
    assert base == config.config_hash(config.config_map(owner, make_spec(config={"maxConnections": 7})))


def test_toml_strings_are_escaped() -> None:
    text = config.render_toml({"a": 'x"y\\z', "b": True, "c": 3})
    assert tomllib.loads(text) == {"a": 'x"y\\z', "b": True, "c": 3}
