"""Engine settings: one validated model, three sources.

Precedence, highest first: command-line flags, environment variables
(`VELOCITY_<FIELD>`, plus `VDB_TOKEN` for the token itself), the TOML config
file (`--config`, which the operator mounts), then the defaults below.

LIVE_SETTINGS can change while the engine runs (config_reload.py re-reads the
file on SIGHUP and when it changes); every other setting needs a restart.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

MiB = 1024 * 1024

# Settings a running engine applies from a reloaded config file. Everything else is
# read once at start-up. Why these and not others:
# - log_level: the root logger's level, nothing else depends on it.
# - max_connections: checked against the open-connection count at each accept;
#   lowering it closes nobody, it only refuses new connections beyond it.
# - appendfsync: the WAL reads its policy at every write (WalWriter.set_policy), so a
#   write acknowledged after a switch to `always` is synced before its reply.
# max_value_bytes stays restart-only: HELLO tells each client the limit once, and
# connections open before a change would be held to a limit they were not told
# (or refused a value they were told fits); it is also tied to max_frame_bytes,
# which sizes every connection's decoder at accept.
LIVE_SETTINGS: frozenset[str] = frozenset({"log_level", "max_connections", "appendfsync"})


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and why."""


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VELOCITY_", extra="forbid", frozen=True)

    data_dir: Path = Field(description="Directory for data, generated TLS material and the auth token.")
    host: str = Field("127.0.0.1", description="Address the V-Proto listener binds to.")
    port: int = Field(2005, ge=0, le=65535, description="V-Proto TCP port (0 picks a free port).")
    metrics_host: str = Field(
        "127.0.0.1", description="Address of the HTTP listener (/metrics, /healthz, /readyz)."
    )
    metrics_port: int = Field(9105, ge=0, le=65535, description="HTTP port for metrics and health (0: any free port).")
    insecure: bool = Field(False, description="Serve plaintext without auth. For local experiments only.")
    tls_cert: Path | None = Field(None, description="Server certificate (PEM). Generated into DATA_DIR/tls when unset.")
    tls_key: Path | None = Field(None, description="Server private key (PEM).")
    tls_san: tuple[str, ...] = Field((), description="Extra DNS names or IPs for a generated server certificate.")
    auth_token_file: Path | None = Field(
        None, description="File holding the client token; generated into DATA_DIR/auth-token when unset."
    )
    admin_token_file: Path | None = Field(
        None,
        description="File holding the admin token (PROMOTE, REPLICA_OF, snapshots); "
        "generated into DATA_DIR/admin-token when unset.",
    )
    replication_token_file: Path | None = Field(
        None,
        description="File holding the replication token (REPL_*; replicas send it to their primary); "
        "generated into DATA_DIR/replication-token when unset.",
    )
    readonly_token_file: Path | None = Field(
        None, description="Optional file holding a read-only client token (GET, EXISTS, TTL, MGET, SCAN)."
    )
    max_unauthenticated: int = Field(
        64, ge=1, description="Connections allowed to wait for HELLO at once; they never take a client slot."
    )
    max_frame_bytes: int = Field(16 * MiB, ge=1024, le=1024 * MiB, description="Largest accepted frame body.")
    max_key_bytes: int = Field(64 * 1024, ge=1, description="Largest accepted key.")
    max_value_bytes: int = Field(8 * MiB, ge=1, description="Largest accepted value.")
    max_connections: int = Field(10_000, ge=1, description="Connections beyond this get a BUSY error.")
    frame_timeout_s: float = Field(30.0, gt=0, description="A frame started but not finished within this is dropped.")
    handshake_timeout_s: float = Field(10.0, gt=0, description="Time allowed for TLS and HELLO.")
    write_buffer_high_bytes: int = Field(
        4 * MiB, ge=64 * 1024, description="Pause reading a client above this backlog."
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="How long shutdown waits for in-flight replies.")
    active_expiry_hz: float = Field(10.0, gt=0, le=1000, description="Active expiry cycles per second.")
    active_expiry_budget_ms: float = Field(1.0, gt=0, description="CPU time one active expiry cycle may use.")
    storage: Literal["lsm", "memory"] = Field(
        "lsm", description="lsm: durable (WAL, SSTables) in DATA_DIR/storage; memory: volatile, for tests."
    )
    data_plane: Literal["python", "native"] = Field(
        "native",
        description="native: the Rust core (velocity_engine._core, built by `make install`) serves every "
        "request: storage, replication, snapshots, Lease election. python: the previous data plane, kept "
        "for one release as a fallback (it cannot open a directory the native plane wrote; issue 13).",
    )
    appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec",
        description="When the WAL is synced: always (before each reply, group commit), everysec, or no (the OS).",
    )
    memtable_bytes: int = Field(
        64 * MiB, ge=64 * 1024, description="Memtable size that triggers a flush to an SSTable."
    )
    block_cache_bytes: int = Field(32 * MiB, ge=0, description="Bound on cached SSTable blocks.")
    compaction_rate_bytes: int = Field(
        64 * MiB, ge=1024 * 1024, description="Bytes per second compaction may write (keeps p99 steady)."
    )
    restore_from: Path | None = Field(
        None, description="Snapshot file to restore into an empty DATA_DIR before starting."
    )
    snapshot_max_files: int = Field(
        4, ge=1, le=64,
        description="Snapshot files (being written, ready or being read) kept at once; beyond it BEGIN gets BUSY.",
    )
    snapshot_max_bytes: int = Field(
        0, ge=0,
        description="Bytes of snapshot files kept at once, the one being begun estimated from the data size "
        "(0: no bound beyond snapshot_max_files); beyond it BEGIN gets BUSY and a file growing past it is abandoned.",
    )
    snapshot_min_free_bytes: int = Field(
        128 * MiB, ge=0,
        description="Free space a snapshot must leave on the data volume; BEGIN gets BUSY when its estimate "
        "would leave less, and a file being written is abandoned when free space drops below half of it.",
    )
    snapshot_idle_s: float = Field(
        120.0, gt=0, le=86400,
        description="A snapshot not read for this long (or a failed one) is deleted (checked every few seconds).",
    )
    replica_of: str | None = Field(
        None, description="Start as a replica of this primary (vdb://HOST:PORT); unset: primary (or the saved role)."
    )
    replication_mode: Literal["async", "sync"] = Field(
        "async", description="sync: a write is acknowledged once sync_replicas replicas have it durably."
    )
    sync_replicas: int = Field(1, ge=1, description="Replicas that must acknowledge a write in sync mode.")
    sync_degrade: bool = Field(
        False, description="sync mode without enough replicas: accept writes anyway (async) instead of refusing."
    )
    sync_timeout_s: float = Field(
        5.0, gt=0, description="A sync-mode write not acknowledged by replicas within this is never acknowledged."
    )
    replication_backlog_bytes: int = Field(
        64 * MiB, ge=1024, description="Recent batches kept so a reconnecting replica can resume without a full copy."
    )
    advertise: str | None = Field(
        None, description="This node's endpoint as others reach it (vdb://HOST:PORT); default from host and port."
    )
    replica_ca: Path | None = Field(
        None, description="CA a replica trusts for its primary's certificate; default: DATA_DIR/tls/ca.crt."
    )
    lease_name: str | None = Field(
        None, description="Elect the primary with this coordination.k8s.io/v1 Lease (unset: admin promotion)."
    )
    lease_namespace: str = Field("default", description="Namespace of the Leases.")
    lease_duration_s: float = Field(5.0, gt=0, description="Lease duration; a primary stops writes well before it.")
    lease_renew_s: float = Field(1.0, gt=0, description="How often the lease agent renews and observes.")
    lease_kubeconfig: Path | None = Field(
        None, description="kubeconfig for the lease agent; unset: the pod's service account."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log verbosity.")
    token: str | None = Field(None, exclude=True, repr=False, description="Client token (from VDB_TOKEN).")
    admin_token: str | None = Field(None, exclude=True, repr=False, description="Admin token (VDB_ADMIN_TOKEN).")
    replication_token: str | None = Field(
        None, exclude=True, repr=False, description="Replication token (VDB_REPLICATION_TOKEN)."
    )
    readonly_token: str | None = Field(
        None, exclude=True, repr=False, description="Read-only client token (VDB_READONLY_TOKEN)."
    )

    @model_validator(mode="after")
    def _check(self) -> EngineSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.max_value_bytes + self.max_key_bytes > self.max_frame_bytes:
            raise ValueError("max_key_bytes + max_value_bytes must fit in max_frame_bytes")
        if self.lease_duration_s <= 2 * self.lease_renew_s:
            raise ValueError("lease_duration_s must exceed 2 * lease_renew_s (fencing needs the margin)")
        token_settings = (
            self.auth_token_file, self.token, self.admin_token_file, self.admin_token, self.replication_token_file,
            self.replication_token, self.readonly_token_file, self.readonly_token,
        )
        if self.insecure and (self.tls_cert or any(token_settings)):
            raise ValueError("--insecure cannot be combined with TLS or token settings")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TokenEnv(settings_cls), _FileSource(settings_cls))


_file_values: dict[str, Any] = {}


class _FileSource(PydanticBaseSettingsSource):
    """Values from the TOML config file (set by load_settings)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _file_values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values)


# The names every Velocity tool shares for the tokens themselves.
TOKEN_ENV = {
    "token": "VDB_TOKEN",
    "admin_token": "VDB_ADMIN_TOKEN",
    "replication_token": "VDB_REPLICATION_TOKEN",
    "readonly_token": "VDB_READONLY_TOKEN",
}


class _TokenEnv(PydanticBaseSettingsSource):
    """VDB_TOKEN, VDB_ADMIN_TOKEN, VDB_REPLICATION_TOKEN and VDB_READONLY_TOKEN."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        return {field: os.environ[env] for field, env in TOKEN_ENV.items() if os.environ.get(env)}


def load_settings(overrides: dict[str, Any], config_file: Path | None = None) -> EngineSettings:
    """Build settings from flags (overrides), environment and an optional TOML file."""
    global _file_values
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            with config_file.open("rb") as fh:
                file_values = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:  # tomllib decodes the bytes itself and lets this through
            raise ConfigError(f"config file {config_file} is not UTF-8: {exc.reason}") from None
        file_values = {k.replace("-", "_"): v for k, v in file_values.items()}
    _file_values = file_values
    try:
        return EngineSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _file_values = {}


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
