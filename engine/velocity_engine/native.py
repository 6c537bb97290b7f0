"""The Python shell around the native data plane (`--data-plane native`, issue 13).

The core (velocity_engine._core, engine/core) owns every byte of the request
path on its own threads; this module keeps what Python is good at: the
settings, the token and TLS material (shared with server.py), /metrics,
/healthz and /readyz (httpd.py, fed from the core's counters at scrape time),
config reload (live settings are pushed into the core) and the start/stop
sequence. The boundary is the short list of calls in _core.pyi
(docs/engine.md, "The Python <-> core boundary").

Experimental: `--storage lsm` (the core's velocity-lsm engine, in DATA_DIR/storage
where the Python engine keeps its data; a directory it wrote is migrated at start)
or `--storage memory`; SNAPSHOT_BEGIN/READ are served by the core (engine/core/src/
snapshot.rs). Replication (stream version 2: docs/formats/replication.md) runs in the
core too: --replica-of, sync mode, PROMOTE and REPLICA_OF; the shell hands it the
settings and tokens. Lease election (`--lease-name`) runs the Python plane's Lease
agent and switchover over the core (native_lease.py): the core checks the Lease's
validity and the handover fence on its request path and hands PROMOTE and
REPLICA_OF to the shell, whose answers change meaning under a Lease; SIGTERM hands
the Lease over (or releases it) before the core stops. `--restore-from` works: the shell restores the snapshot file into
DATA_DIR before the core opens it (cli.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from velocity_engine import __version__
from velocity_engine.auth import Credentials, Role
from velocity_engine.config import EngineSettings
from velocity_engine.config_reload import ConfigReloader, FileStamp, Result
from velocity_engine.fsutil import make_private_dirs
from velocity_engine.httpd import AdminHttp
from velocity_engine.metrics import EngineCollector, Stats, make_registry, render, rss_bytes
from velocity_engine.native_lease import NativeLeaseHost
from velocity_engine.replication.lease_metrics import lease_metric_families
from velocity_engine.storage.compaction import DURATION_BUCKETS
from velocity_engine.storage.errors import CorruptionError, RestoreError
from velocity_engine.storage.exported_metrics import _histogram, snapshot_metric_families
from velocity_engine.storage.filenames import STORAGE_DIR
from velocity_engine.storage.snapshot_exporter import SnapshotFigures
from velocity_engine.storage.wal_writer import FSYNC_BUCKETS, Policy
from velocity_engine.tls import TlsFiles, certificate_expiry

if TYPE_CHECKING:
    from velocity_engine._core import Core

log = logging.getLogger(__name__)


def unsupported(settings: EngineSettings) -> list[str]:
    """Why these settings cannot run on the native data plane yet (empty: they can)."""
    del settings  # everything the Python plane runs, the native one does too (issue 13)
    problems: list[str] = []
    return problems


def restore_snapshot(snapshot: Path, data_dir: Path) -> int | None:
    """`--restore-from` for the native plane: velocity-lsm builds DATA_DIR/storage from the file
    (the Python restore would trip over a version-2 manifest when the engine restarts with the
    same flag). Entries restored, or None when the directory already came from this file."""
    core = load_core()
    try:
        n: int | None = core.restore_snapshot(str(snapshot), str(data_dir / STORAGE_DIR))
    except core.StorageCorruption as exc:
        path, offset, reason = exc.args
        raise RestoreError(f"{path}: damaged at offset {offset}: {reason}") from None
    except OSError as exc:
        raise RestoreError(str(exc)) from None
    return n


def load_core() -> Any:
    """The extension module, or an ImportError that says how to build it."""
    try:
        from velocity_engine import _core
    except ImportError as exc:
        raise ImportError(
            f"the native data plane is not built ({exc}); run `make native`, or start with --data-plane python"
        ) from None
    return _core


class _NativeCollector(EngineCollector):
    """EngineCollector over a Stats refreshed from the core at each scrape."""

    def __init__(self, server: NativeServer) -> None:
        self.server = server
        super().__init__(Stats(), server.gauges, server.metric_families)

    def collect(self) -> Iterator[Any]:
        self.server.refresh_stats(self.stats)
        yield from super().collect()


class _Reloader(ConfigReloader):
    """Pushes the reloader's INFO section into the core after each reload."""

    def reload(self, reason: str) -> Result:
        result = super().reload(reason)
        push = getattr(self.server, "push_info_sections", None)
        if push is not None:
            push()
        return result


class NativeServer:
    """The engine process with the native data plane (what server.Server is for the Python one)."""

    def __init__(self, settings: EngineSettings) -> None:
        from velocity_engine.server import _node_id

        self._settings = settings
        self.started = time.time()
        self.node_id = _node_id(settings.data_dir)
        self.credentials: Credentials | None = None
        self.token: str | None = None
        self.token_path: Path | None = None
        self.tls: TlsFiles | None = None
        self.shutting_down = False
        self.ready = False
        self.port = 0
        self.metrics_port = 0
        self.config_reloader: ConfigReloader | None = None
        self._core: Core | None = None
        self._stats: dict[str, Any] = {}
        self._http: AdminHttp | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lease_host: NativeLeaseHost | None = None  # --lease-name

    # -- settings (the reloader assigns `settings`; live ones go to the core) ------

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @settings.setter
    def settings(self, new: EngineSettings) -> None:
        self._settings = new
        if self._core is not None:
            self._core.set_live_settings({"max_connections": new.max_connections})
        logging.getLogger().setLevel(new.log_level)

    def set_appendfsync(self, policy: Policy) -> None:
        """The WAL's sync policy, switched in the core (memory storage has no log: no effect)."""
        if self._core is not None:
            self._core.set_live_settings({"appendfsync": policy})

    # -- start / stop ----------------------------------------------------------

    async def start(self) -> None:
        from velocity_engine.server import load_security

        s = self._settings
        make_private_dirs(s.data_dir)
        tokens: list[tuple[str, str]] = []
        if s.insecure:
            log.warning("--insecure: serving PLAINTEXT WITHOUT AUTH; for local experiments only")
        else:
            self.credentials, self.tls = load_security(s)
            self.token = self.credentials.token(Role.CLIENT)
            self.token_path = self.credentials.paths.get(Role.CLIENT)
            tokens = [(role.value, token) for role, token in self.credentials.tokens.items()]
        core_mod = load_core()
        try:
            self._core = core_mod.start(self._core_settings(tokens))
        except core_mod.StorageCorruption as exc:
            raise CorruptionError(*exc.args) from None
        core = self._core
        assert core is not None
        self.port = core.port
        self._log_recovery(core.stats().get("lsm"))
        if s.lease_name:
            self.lease_host = NativeLeaseHost(core, s, self.node_id, self.credentials, self._peer_ca())
            self.lease_host.start()
        self.push_info_sections()
        registry = make_registry(_NativeCollector(self))
        self._http = AdminHttp(lambda: render(registry), self._readiness)
        self.metrics_port = await self._http.start(s.metrics_host, s.metrics_port)
        self.ready = True
        log.info(
            "velocity-engine %s listening on %s:%d (%s), metrics on http://%s:%d/metrics; "
            "native data plane, %d worker threads, %s storage",
            __version__,
            s.host,
            self.port,
            "TLS" if self.tls is not None else "plaintext",
            s.metrics_host,
            self.metrics_port,
            core.threads,
            s.storage,
        )

    @staticmethod
    def _log_recovery(lsm: dict[str, Any] | None) -> None:
        """What the core's start-up did to the storage, in lsm.py's words."""
        if lsm is None:
            return
        r = lsm["recovery"]
        if r["migrated_from_v1"]:
            log.info("storage written by the Python engine (format version 1) migrated to version 2")
        if r["torn_bytes"]:
            log.warning(
                "WAL %s: dropping a torn tail of %d bytes; those writes were never acknowledged as synced",
                r["torn_at"], r["torn_bytes"],
            )
        for name in r["removed_files"]:
            log.info("removed %s: no manifest needs it (an interrupted flush or compaction)", name)
        log.info("storage recovered: %d WAL segments, %d batches replayed in %.3f s",
                 r["segments"], r["batches"], r["seconds"])

    def _core_settings(self, tokens: list[tuple[str, str]]) -> dict[str, Any]:
        """What `_core.start` takes (docs/engine.md, the boundary table)."""
        s = self._settings
        return {
            "host": s.host,
            "port": s.port,
            "tls_cert": str(self.tls.cert) if self.tls is not None else None,
            "tls_key": str(self.tls.key) if self.tls is not None else None,
            "insecure": s.insecure,
            "tokens": tokens,
            "node_id": self.node_id,
            "version": __version__,
            "max_frame_bytes": s.max_frame_bytes,
            "max_key_bytes": s.max_key_bytes,
            "max_value_bytes": s.max_value_bytes,
            "max_connections": s.max_connections,
            "max_unauthenticated": s.max_unauthenticated,
            "frame_timeout_s": s.frame_timeout_s,
            "handshake_timeout_s": s.handshake_timeout_s,
            "write_buffer_high_bytes": s.write_buffer_high_bytes,
            "active_expiry_hz": s.active_expiry_hz,
            "active_expiry_budget_ms": s.active_expiry_budget_ms,
            "storage": s.storage,
            "data_dir": str(s.data_dir),
            "appendfsync": s.appendfsync,
            "memtable_bytes": s.memtable_bytes,
            "block_cache_bytes": s.block_cache_bytes,
            "compaction_rate_bytes": s.compaction_rate_bytes,
            "snapshot_max_files": s.snapshot_max_files,
            "snapshot_max_bytes": s.snapshot_max_bytes,
            "snapshot_min_free_bytes": s.snapshot_min_free_bytes,
            "snapshot_idle_s": s.snapshot_idle_s,
            "epoch": self._epoch(),
            **self._replication_settings(),
        }

    def _epoch(self) -> int:
        """The node's epoch, as replication.manager reads it (the core raises it to the log's)."""
        from velocity_engine.replication.state_file import NodeState, load_state

        state = load_state(self._settings.data_dir)
        return (state if state is not None else NodeState()).epoch

    def _peer_ca(self) -> Path | None:
        """The CA this node trusts for the other nodes of its cluster."""
        s = self._settings
        return s.replica_ca if s.replica_ca is not None else (self.tls.ca if self.tls is not None else None)

    def _replication_settings(self) -> dict[str, Any]:
        """What the core's replication needs: role at start, sync mode, peers' trust and tokens."""
        s = self._settings
        ca = self._peer_ca()
        creds = self.credentials
        return {
            "replica_of": s.replica_of,
            "replication_mode": s.replication_mode,
            "sync_replicas": s.sync_replicas,
            "sync_degrade": s.sync_degrade,
            "sync_timeout_s": s.sync_timeout_s,
            "replication_backlog_bytes": s.replication_backlog_bytes,
            "advertise": s.advertise,
            "replica_ca": str(ca) if ca is not None else None,
            "replication_token": creds.token(Role.REPLICATION) if creds is not None else None,
            "admin_token": creds.token(Role.ADMIN) if creds is not None else None,
            "legacy_token": creds.token(Role.CLIENT) if creds is not None else None,
            "data_dir": str(s.data_dir),
            "lease_name": s.lease_name,
        }

    def replication_state(self) -> dict[str, Any]:
        """INFO's replication section, from the core."""
        if self._core is None:
            return {"role": "primary", "epoch": 0, "seq": 0}
        state: dict[str, Any] = json.loads(self._core.replication_state())
        return state

    def enable_config_reload(
        self, flags: dict[str, Any], config_file: Path | None, stamp: FileStamp | None = None
    ) -> ConfigReloader:
        self.config_reloader = _Reloader(self, flags, config_file, stamp)
        if config_file is not None:
            task = asyncio.get_running_loop().create_task(self.config_reloader.watch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.push_info_sections()
        return self.config_reloader

    async def stop(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        self.ready = False
        core = self._core
        if self.lease_host is not None:
            # Before the connections close: the replicas' streams are among them, and
            # clients mid-write get REDIRECT to the successor instead of a closed socket.
            await self.lease_host.hand_over_for_shutdown()
        if core is not None:
            log.info("shutting down: draining the native data plane")
            cut = await asyncio.to_thread(core.stop, self._settings.shutdown_grace_s)
            if cut:
                log.warning("%d connections did not drain in time; aborted", cut)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.lease_host is not None:
            await self.lease_host.stop()
        if self._http is not None:
            await self._http.close()
        log.info("stopped")

    # -- what the core is told and asked -----------------------------------------

    def push_info_sections(self) -> None:
        """INFO's config section comes from the shell (replication's from the core)."""
        if self._core is None:
            return
        s = self._settings
        config = (
            self.config_reloader.info()
            if self.config_reloader is not None
            else {"log_level": s.log_level, "max_connections": s.max_connections, "appendfsync": s.appendfsync}
        )
        self._core.set_info_sections(json.dumps({"config": config}))

    def refresh_stats(self, stats: Stats) -> None:
        """Copy the core's counters into the Stats the collector renders."""
        if self._core is None:
            return
        st = self._stats = self._core.stats()
        stats.requests = st["requests"]
        stats.latency_buckets = st["latency_buckets"]
        stats.latency_sum = st["latency_sum"]
        stats.errors = st["errors"]
        stats.connections = st["connections"]
        stats.connections_total = st["connections_total"]
        stats.connections_rejected = st["connections_rejected"]
        stats.auth_failures = st["auth_failures"]
        stats.bytes_in = st["bytes_in"]
        stats.bytes_out = st["bytes_out"]

    def gauges(self) -> dict[str, tuple[str, str, float]]:
        st = self._stats
        g: dict[str, tuple[str, str, float]] = {
            "velocity_keys": ("gauge", "Keys stored (expired keys not yet removed included).", st.get("keys", 0)),
            "velocity_keys_with_ttl": ("gauge", "Keys that carry an expiry time.", st.get("keys_with_ttl", 0)),
            "velocity_expired_keys": ("counter", "Keys removed because they expired.", st.get("expired_keys", 0)),
            "velocity_data_bytes": ("gauge", "Bytes of keys and values held.", st.get("data_bytes", 0)),
            "velocity_memory_rss_bytes": ("gauge", "Resident memory of the engine.", rss_bytes()),
            "velocity_ready": ("gauge", "1 when the engine accepts requests.", 1.0 if self._readiness()[0] else 0.0),
            "velocity_uptime_seconds": ("gauge", "Seconds since start.", time.time() - self.started),
            "velocity_max_connections": (
                "gauge",
                "The configured connection limit (max_connections; live setting).",
                self._settings.max_connections,
            ),
        }
        if self.tls is not None:
            g["velocity_tls_certificate_expiry_timestamp_seconds"] = (
                "gauge",
                "When the server certificate expires (Unix time).",
                certificate_expiry(self.tls.cert),
            )
        return g

    def metric_families(self) -> Iterator[Any]:
        r = self.replication_state()
        primary = r.get("role") == "primary"
        role = GaugeMetricFamily("velocity_replication_role", "1 for the role this node has now.", labels=["role"])
        role.add_metric(["primary"], 1.0 if primary else 0.0)
        role.add_metric(["replica"], 0.0 if primary else 1.0)
        yield role
        yield GaugeMetricFamily(
            "velocity_replication_lag_records",
            "Batches a replica is behind its primary (on a primary: the slowest replica's).",
            value=r.get("lag_records", 0),
        )
        yield GaugeMetricFamily(
            "velocity_replication_lag_seconds",
            "Seconds a replica is behind its primary (on a primary: the slowest replica's).",
            value=r.get("lag_seconds", 0.0),
        )
        yield GaugeMetricFamily(
            "velocity_replicas_connected", "Replicas streaming from this primary.", value=r.get("replicas_connected", 0)
        )
        yield GaugeMetricFamily(
            "velocity_replication_backlog_bytes",
            "Bytes held in the replication backlog.",
            value=r.get("backlog", {}).get("bytes", 0),
        )
        yield GaugeMetricFamily(
            "velocity_replication_epoch", "The highest epoch this node has seen.", value=r.get("epoch", 0)
        )
        yield GaugeMetricFamily(
            "velocity_replication_sequence", "Sequence number of the last batch applied.", value=r.get("seq", 0)
        )
        if self.config_reloader is not None:
            yield from self.config_reloader.metric_families()
        snaps = self._stats.get("snapshots")
        if snaps is not None:
            yield from snapshot_metric_families(
                SnapshotFigures(**{k: v for k, v in snaps.items() if k != "removed_at_start"})
            )
        lsm = self._stats.get("lsm")
        if lsm is not None:
            yield from lsm_metric_families(lsm)
        yield from lease_metric_families(self.lease_host.lease if self.lease_host is not None else None)

    def _readiness(self) -> tuple[bool, str]:
        if self.shutting_down:
            return False, "shutting down"
        if not self.ready:
            return False, "starting"
        return True, "ready"


def lsm_metric_families(st: dict[str, Any]) -> Iterator[Any]:
    """exported_metrics.py's storage families (names, help, labels, buckets), fed from
    the core's `stats()["lsm"]` (velocity_lsm::Stats) instead of LsmStorage."""
    yield CounterMetricFamily("velocity_wal_appends", "Records appended to the write-ahead log.",
                              value=st["wal_appends"])
    yield CounterMetricFamily("velocity_wal_bytes", "Bytes appended to the write-ahead log.", value=st["wal_bytes"])
    yield _histogram("velocity_wal_fsync_duration_seconds", "Time one WAL fdatasync took.",
                     FSYNC_BUCKETS, st["fsync_buckets"], st["fsync_seconds_sum"])
    yield GaugeMetricFamily(
        "velocity_wal_fsync_lag_seconds",
        "Age of the oldest applied write not yet synced to disk (0 when all are).",
        value=st["fsync_lag_seconds"],
    )
    yield GaugeMetricFamily(
        "velocity_writes_refused", "1 when a storage failure made the engine refuse writes.",
        value=1.0 if st["writes_refused"] else 0.0,
    )
    yield GaugeMetricFamily(
        "velocity_wal_truncated_bytes", "Bytes of a torn WAL tail dropped at the last start-up.",
        value=st["torn_bytes"],
    )
    yield GaugeMetricFamily("velocity_memtable_bytes", "Approximate bytes held in memtables.",
                            value=st["memtable_bytes"])
    tables = GaugeMetricFamily("velocity_sstables", "SSTables, by level (compaction tier).", labels=["level"])
    tbytes = GaugeMetricFamily("velocity_sstable_bytes", "Bytes of SSTables, by level (compaction tier).",
                               labels=["level"])
    for tier, n, b in sorted(st["tiers"]):
        tables.add_metric([str(tier)], n)
        tbytes.add_metric([str(tier)], b)
    yield tables
    yield tbytes
    yield CounterMetricFamily("velocity_compactions", "Compactions completed.", value=st["compactions"])
    yield CounterMetricFamily("velocity_compaction_bytes_written", "Bytes written by compactions.",
                              value=st["compaction_bytes_written"])
    yield _histogram("velocity_compaction_duration_seconds", "Time one compaction took.",
                     DURATION_BUCKETS, st["compaction_buckets"], st["compaction_seconds_sum"])
    yield CounterMetricFamily("velocity_memtable_flushes", "Memtables flushed to SSTables.", value=st["flushes"])
    checks = CounterMetricFamily("velocity_bloom_checks", "Bloom filter checks on table lookups, by result.",
                                 labels=["result"])
    checks.add_metric(["negative"], st["bloom_negative"])
    checks.add_metric(["maybe"], st["bloom_maybe"])
    yield checks
    yield CounterMetricFamily("velocity_bloom_false_positives",
                              "Lookups a bloom filter let through that the table did not hold.",
                              value=st["bloom_false_positives"])
    yield GaugeMetricFamily("velocity_block_cache_bytes", "Bytes of SSTable blocks in the block cache.",
                            value=st["block_cache_bytes"])
