"""The engine's config file (ConfigMap NAME-config, key velocity.toml).

Keys are the engine's settings (engine/velocity_engine/config.py, EngineSettings), which
forbids unknown keys: only settings the engine defines may appear here. Paths point at
the mounts the StatefulSet builder creates.

Settings in LIVE_KEYS are applied by running engines when their mounted file changes
(the engine watches it, see docs/engine.md "Config reload"), so they are left out of
`config_hash`: changing them updates the ConfigMap only, and kubelet propagates it to the
pods. Every other key is restart-only and feeds the hash on the pod template, so changing
it rolls the pods.
"""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

from .. import names
from ..api.cluster import VelocityClusterSpec
from .meta import Owner, object_meta

__all__ = [
    "ADMIN_DIR",
    "AUTH_DIR",
    "CONFIG_DIR",
    "CONFIG_KEY",
    "DATA_DIR",
    "LIVE_KEYS",
    "NOT_DATA",
    "REPLICATION_DIR",
    "SNAPSHOTS_DIR",
    "TLS_DIR",
    "config_hash",
    "config_map",
    "engine_settings",
    "render_toml",
    "restart_only",
]

CONFIG_KEY = "velocity.toml"
CONFIG_DIR = "/etc/velocity/config"
TLS_DIR = "/etc/velocity/tls"
AUTH_DIR = "/etc/velocity/auth"  # NAME-auth: the client token
ADMIN_DIR = "/etc/velocity/admin"  # NAME-admin: the admin token
REPLICATION_DIR = "/etc/velocity/replication"  # NAME-replication: the replication token
DATA_DIR = "/data"
SNAPSHOTS_DIR = "/data/snapshots"
# Entries of DATA_DIR that are not data: a data directory holding only these is empty for
# a restore (the snapshots mount point, generated TLS material and tokens, the node id).
NOT_DATA: tuple[str, ...] = ("snapshots", "lost+found", "tls", "auth-token", "admin-token",
                             "replication-token", "node-id")

# The engine's config.LIVE_SETTINGS (the operator does not import the engine; a unit test
# checks they agree). max_value_bytes is not among them: clients learn it once, at HELLO.
LIVE_KEYS: frozenset[str] = frozenset({"log_level", "max_connections", "appendfsync"})


def engine_settings(spec: VelocityClusterSpec) -> dict[str, Any]:
    """The engine settings for `spec`, keyed by EngineSettings field names."""
    settings: dict[str, Any] = {
        "data_dir": DATA_DIR,
        "host": "0.0.0.0",  # pods are reached through Services, not loopback
        "port": names.CLIENT_PORT,
        "metrics_host": "0.0.0.0",
        "metrics_port": names.METRICS_PORT,
    }
    if spec.tls.enabled:
        settings["tls_cert"] = f"{TLS_DIR}/tls.crt"
        settings["tls_key"] = f"{TLS_DIR}/tls.key"
        settings["auth_token_file"] = f"{AUTH_DIR}/token"
        # Every engine of the cluster shares these two (issue 11): replicas present the
        # replication token to their primary, engines the admin token to each other
        # during a switchover; client tokens can run neither.
        settings["admin_token_file"] = f"{ADMIN_DIR}/token"
        settings["replication_token_file"] = f"{REPLICATION_DIR}/token"
    else:
        settings["insecure"] = True
    if spec.config is not None:
        settings.update(spec.config.model_dump(exclude_none=True))
    return settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"no TOML form for engine setting value {value!r}")


def render_toml(settings: dict[str, Any]) -> str:
    """Flat TOML, one `key = value` per line, keys sorted so the hash is stable."""
    lines = ["# Written by the Velocity operator from the VelocityCluster spec; edits are overwritten."]
    lines += [f"{key} = {_toml_value(settings[key])}" for key in sorted(settings)]
    return "\n".join(lines) + "\n"


def config_map(owner: Owner, spec: VelocityClusterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(owner, names.config_map(owner.name)),
        "data": {CONFIG_KEY: render_toml(engine_settings(spec))},
    }


def restart_only(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a running engine cannot take from a changed file."""
    return {key: value for key, value in settings.items() if key not in LIVE_KEYS}


def config_hash(config_map_obj: dict[str, Any]) -> str:
    """A short digest of the restart-only config, put on the pod template so a change rolls the pods.

    Hashes the file re-rendered without LIVE_KEYS: a config without live keys hashes as
    the whole file did before live reload existed, so upgrading the operator does not
    roll such clusters.
    """
    settings = tomllib.loads(config_map_obj["data"][CONFIG_KEY])
    text = render_toml(restart_only(settings))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
