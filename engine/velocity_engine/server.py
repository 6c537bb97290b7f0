"""The engine process: listeners, storage, background tasks, shutdown.

Start-up order: settings -> token and TLS material -> storage -> listeners
-> ready. Shutdown (SIGTERM/SIGINT): not ready, hand the primary role over
(Lease election: a switchover to the best replica, or a Lease release), stop
accepting, let each connection flush what it owes, close, then close
storage. Every background task is tracked and cancelled at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
import uuid
from itertools import chain
from pathlib import Path
from typing import Any

from vproto.frame import PROTOCOL_VERSION

from velocity_engine import __version__
from velocity_engine.auth import Credentials, Role, TokenSource, load_credentials
from velocity_engine.auth_throttle import AuthThrottle
from velocity_engine.config import EngineSettings
from velocity_engine.config_reload import ConfigReloader, FileStamp
from velocity_engine.connection import Connection
from velocity_engine.dispatch import Dispatcher
from velocity_engine.expiry import active_expiry_loop
from velocity_engine.fsutil import make_private_dirs
from velocity_engine.httpd import AdminHttp
from velocity_engine.keyspace import Keyspace
from velocity_engine.metrics import EngineCollector, Stats, make_registry, render, rss_bytes
from velocity_engine.replication import Replication
from velocity_engine.storage import Storage
from velocity_engine.storage.exported_metrics import storage_metric_families
from velocity_engine.storage.lsm import LsmStorage
from velocity_engine.storage.opening import open_storage
from velocity_engine.storage.snapshot_exporter import SnapshotExporter, SnapshotLimits
from velocity_engine.storage.wal_writer import Policy
from velocity_engine.tls import TlsFiles, certificate_expiry, default_names, ensure_generated, server_context

log = logging.getLogger(__name__)


class Server:
    def __init__(self, settings: EngineSettings, storage: Storage | None = None) -> None:
        self.settings = settings
        self.started = time.time()
        self.node_id = _node_id(settings.data_dir)
        self.stats = Stats()
        # `storage` is the local storage; the command layer goes through the
        # replication wrapper, which numbers, logs and streams every batch.
        self.storage: Storage = storage if storage is not None else open_storage(settings)
        self.snapshots = SnapshotExporter(
            self.storage, settings.data_dir,
            limits=SnapshotLimits(
                settings.snapshot_max_files, settings.snapshot_max_bytes, settings.snapshot_min_free_bytes,
                settings.snapshot_idle_s,
            ),
        )
        self.replication = Replication(self, self.storage)
        self.keyspace = Keyspace(self.replication.storage)
        self.credentials: Credentials | None = None  # None: --insecure
        self.token: str | None = None  # the client token
        self.token_path: Path | None = None
        self.tls: TlsFiles | None = None
        self.connections: set[Connection] = set()  # authenticated: each holds a client slot
        self.unauthenticated: set[Connection] = set()  # waiting for HELLO (max_unauthenticated)
        self.auth_throttle = AuthThrottle()
        self.shutting_down = False
        self.ready = False
        self.port = 0
        self.metrics_port = 0
        self.dispatcher = Dispatcher(self)
        self.config_reloader: ConfigReloader | None = None
        self._listener: asyncio.Server | None = None
        self._http: AdminHttp | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- start ------------------------------------------------------------------

    def prepare_security(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.insecure:
            log.warning("--insecure: serving PLAINTEXT WITHOUT AUTH; for local experiments only")
            return None
        self.credentials, self.tls = load_security(s)
        self.token = self.credentials.tokens[Role.CLIENT]
        self.token_path = self.credentials.paths[Role.CLIENT]
        return server_context(self.tls.cert, self.tls.key)

    async def start(self) -> None:
        s = self.settings
        make_private_dirs(s.data_dir)  # 0700 when the engine creates it (docs/security.md)
        ctx = self.prepare_security()
        registry = make_registry(
            EngineCollector(
                self.stats, self._gauges,
                lambda: chain(
                    storage_metric_families(self.storage, self.snapshots), self.replication.metric_families(),
                    self.config_reloader.metric_families() if self.config_reloader is not None else (),
                ),
            )
        )
        self._http = AdminHttp(lambda: render(registry), self._readiness)
        self.metrics_port = await self._http.start(s.metrics_host, s.metrics_port)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: Connection(self),
            s.host,
            s.port,
            ssl=ctx,
            ssl_handshake_timeout=s.handshake_timeout_s if ctx else None,
            backlog=1024,
            reuse_address=True,
        )
        for sock in self._listener.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = int(self._listener.sockets[0].getsockname()[1])
        self.replication.start(self.port)
        self._spawn(active_expiry_loop(self.keyspace, s.active_expiry_hz, s.active_expiry_budget_ms / 1000))
        self.ready = True
        log.info(
            "velocity-engine %s listening on %s:%d (%s), metrics on http://%s:%d/metrics",
            __version__, s.host, self.port, "TLS" if ctx else "plaintext", s.metrics_host, self.metrics_port,
        )

    def enable_config_reload(
        self, flags: dict[str, Any], config_file: Path | None, stamp: FileStamp | None = None
    ) -> ConfigReloader:
        """Reload on request (SIGHUP, the caller wires it) and, with a file, when the file changes."""
        self.config_reloader = ConfigReloader(self, flags, config_file, stamp)
        if config_file is not None:
            self._spawn(self.config_reloader.watch())
        return self.config_reloader

    def peer_token(self, role: Role) -> str | None:
        """The token this engine presents to another engine of its cluster (None: --insecure)."""
        return self.credentials.token(role) if self.credentials is not None else None

    def set_appendfsync(self, policy: Policy) -> None:
        """Switch the WAL sync policy of a running engine (config reload)."""
        if isinstance(self.storage, LsmStorage):
            self.storage.set_appendfsync(policy)
        # Memory storage has no log: the setting is recorded and means nothing.

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- stop -------------------------------------------------------------------

    async def stop(self) -> None:
        if self.shutting_down:
            await self._stopped.wait()
            return
        self.shutting_down = True
        self.ready = False
        # Before the connections close: the replicas' streams are among them, and
        # clients mid-write get REDIRECT to the successor instead of a closed socket.
        await self.replication.hand_over_for_shutdown()
        log.info("shutting down: %d connections to drain", len(self.connections))
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.unauthenticated):
            conn._abort()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_grace_s)
            except TimeoutError:
                log.warning("%d connections did not drain in time; aborting them", len(self.connections))
                for conn in list(self.connections):
                    conn._abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.replication.stop()
        if self._http is not None:
            await self._http.close()
        self.snapshots.close()
        self.storage.close()
        self._stopped.set()
        log.info("stopped")

    def connection_closed(self) -> None:
        if not self.connections:
            self._idle.set()

    # -- introspection ----------------------------------------------------------

    def _readiness(self) -> tuple[bool, str]:
        if self.shutting_down:
            return False, "shutting down"
        if not self.ready:
            return False, "starting"
        return True, "ready"

    def _gauges(self) -> dict[str, tuple[str, str, float]]:
        st = self.storage.stats()
        g: dict[str, tuple[str, str, float]] = {
            "velocity_keys": (
                "gauge", "Keys stored (expired keys not yet removed included).", len(self.keyspace.storage)
            ),
            "velocity_keys_with_ttl": ("gauge", "Keys that carry an expiry time.", st.get("keys_with_ttl", 0)),
            "velocity_expired_keys": ("counter", "Keys removed because they expired.", self.keyspace.expired_total),
            "velocity_data_bytes": ("gauge", "Bytes of keys and values held.", st.get("data_bytes", 0)),
            "velocity_memory_rss_bytes": ("gauge", "Resident memory of the engine.", rss_bytes()),
            "velocity_ready": ("gauge", "1 when the engine accepts requests.", 1.0 if self._readiness()[0] else 0.0),
            "velocity_uptime_seconds": ("gauge", "Seconds since start.", time.time() - self.started),
            "velocity_max_connections": (
                "gauge", "The configured connection limit (max_connections; live setting).",
                self.settings.max_connections,
            ),
        }
        if self.tls is not None:
            g["velocity_tls_certificate_expiry_timestamp_seconds"] = (
                "gauge", "When the server certificate expires (Unix time).", certificate_expiry(self.tls.cert),
            )
        return g

    def info(self) -> dict[str, Any]:
        st = self.storage.stats()
        stats = self.stats
        from vproto.frame import Opcode

        return {
            "server": {
                "version": __version__,
                "protocol_version": PROTOCOL_VERSION,
                "node_id": self.node_id,
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 3),
                "role": self.replication.state.role,
                "tls": self.tls is not None,
                "auth": self.token is not None,
                "port": self.port,
            },
            "clients": {
                "connected": len(self.connections),
                "unauthenticated": len(self.unauthenticated),
                "accepted_total": stats.connections_total,
                "rejected_total": stats.connections_rejected,
                "auth_failures_total": stats.auth_failures,
            },
            "keys": len(self.keyspace.storage),
            "keys_with_ttl": st.get("keys_with_ttl", 0),
            "expired_keys_total": self.keyspace.expired_total,
            "memory": {"rss_bytes": rss_bytes(), "data_bytes": st.get("data_bytes", 0)},
            "stats": {
                "requests": {op.name.lower(): stats.requests[op] for op in Opcode if stats.requests[op]},
                "errors": sum(stats.errors),
                "bytes_in": stats.bytes_in,
                "bytes_out": stats.bytes_out,
            },
            "latency": stats.latency_quantiles(),
            "storage": {k: v for k, v in st.items() if k != "persistence"},
            "persistence": st.get("persistence", {"appendfsync": "none", "last_fsync_ms": 0}),
            "replication": self.replication.info(),
            "config": (
                self.config_reloader.info() if self.config_reloader is not None
                else {"log_level": self.settings.log_level, "max_connections": self.settings.max_connections,
                      "appendfsync": self.settings.appendfsync}
            ),
            "limits": {
                "max_frame_bytes": self.settings.max_frame_bytes,
                "max_key_bytes": self.settings.max_key_bytes,
                "max_value_bytes": self.settings.max_value_bytes,
                "max_connections": self.settings.max_connections,
            },
        }


def load_security(s: EngineSettings) -> tuple[Credentials, TlsFiles]:
    """Every role's token (read or generated) and the TLS files (given or generated); not for --insecure.

    Shared by both data planes (server.Server, native.NativeServer).
    """
    credentials = load_credentials(s.data_dir, [
        TokenSource(Role.CLIENT, "VDB_TOKEN", s.token, s.auth_token_file, "auth-token"),
        TokenSource(Role.ADMIN, "VDB_ADMIN_TOKEN", s.admin_token, s.admin_token_file, "admin-token"),
        TokenSource(Role.REPLICATION, "VDB_REPLICATION_TOKEN", s.replication_token, s.replication_token_file,
                    "replication-token"),
        TokenSource(Role.READONLY, "VDB_READONLY_TOKEN", s.readonly_token, s.readonly_token_file, None),
    ])
    if s.tls_cert is not None and s.tls_key is not None:
        tls = TlsFiles(s.tls_cert, s.tls_key, None)
    else:
        tls = ensure_generated(s.data_dir / "tls", default_names(s.tls_san))
    log.info("TLS 1.3 only; certificate %s; clients trust %s", tls.cert, tls.ca or "(your CA)")
    for role, path in credentials.paths.items():
        log.info("%s token: %s", role.value, path or "from the environment")
    return credentials, tls


def _node_id(data_dir: Path) -> str:
    """A stable id per data directory, so a restarted node keeps its name."""
    path = data_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        from velocity_engine.fsutil import atomic_write

        make_private_dirs(data_dir)
        nid = uuid.uuid4().hex[:16]
        atomic_write(path, (nid + "\n").encode())
        return nid
