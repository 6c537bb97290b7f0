"""`velocity-engine`: start a server (flags override env, which overrides --config)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from velocity_engine import __version__
from velocity_engine.auth import TokenError
from velocity_engine.config import ConfigError, EngineSettings, load_settings
from velocity_engine.config_reload import FileStamp, file_stamp
from velocity_engine.storage.errors import CorruptionError, RestoreError

log = logging.getLogger("velocity_engine")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (required).")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML config file.")
@click.option("--host", help="Address to listen on for V-Proto [127.0.0.1].")
@click.option("--port", type=int, help="V-Proto port [2005].")
@click.option("--metrics-host", help="Address for /metrics, /healthz, /readyz [127.0.0.1].")
@click.option("--metrics-port", type=int, help="HTTP port for metrics and health [9105].")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), help="Server certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), help="Server key (PEM).")
@click.option("--tls-san", multiple=True, help="Extra name for the generated certificate (repeatable).")
@click.option("--auth-token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File with the client token [DATA_DIR/auth-token, generated].")
@click.option("--admin-token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File with the admin token: PROMOTE, REPLICA_OF, snapshots [DATA_DIR/admin-token, generated].")
@click.option("--replication-token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File with the replication token: REPL_* [DATA_DIR/replication-token, generated].")
@click.option("--readonly-token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File with an optional read-only client token.")
@click.option("--insecure", is_flag=True, default=None, help="Plaintext, no auth. Local experiments only.")
@click.option("--max-frame-bytes", type=int, help="Largest accepted frame body.")
@click.option("--max-value-bytes", type=int, help="Largest accepted value.")
@click.option("--max-connections", type=int, help="Connection limit.")
@click.option("--storage", type=click.Choice(["lsm", "memory"]), help="lsm: durable (default); memory: volatile.")
@click.option(
    "--data-plane", type=click.Choice(["python", "native"]),
    help="native: the Rust core serves every request [native]; python: the previous data plane (fallback).",
)
@click.option(
    "--appendfsync", type=click.Choice(["always", "everysec", "no"]),
    help="WAL sync policy [everysec]; always: replies wait for the sync (group commit).",
)
@click.option("--memtable-bytes", type=int, help="Memtable size that triggers a flush [64 MiB].")
@click.option(
    "--restore-from", type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Restore this snapshot file (velocityctl snapshot) into an empty --data-dir, then start.",
)
@click.option("--replica-of", help="Start as a replica of this primary: vdb://HOST:PORT.")
@click.option("--replication-mode", type=click.Choice(["async", "sync"]), help="async (default) or sync.")
@click.option("--sync-replicas", type=int, help="sync mode: replicas that must acknowledge a write [1].")
@click.option("--sync-degrade/--no-sync-degrade", default=None,
              help="sync mode without enough replicas: accept writes (degrade) instead of refusing them.")
@click.option("--sync-timeout-s", type=float, help="sync mode: give up on a write's acknowledgement after this [5].")
@click.option("--replication-backlog-bytes", type=int, help="Replication backlog size [64 MiB].")
@click.option("--advertise", help="This node's endpoint for other nodes and redirects: vdb://HOST:PORT.")
@click.option("--replica-ca", type=click.Path(path_type=Path, dir_okay=False),
              help="CA the replica trusts for its primary [DATA_DIR/tls/ca.crt].")
@click.option("--lease-name", help="Elect the primary with this Kubernetes Lease (coordination.k8s.io/v1).")
@click.option("--lease-namespace", help="Namespace of the Leases [default].")
@click.option("--lease-duration-s", type=float, help="Lease duration [5].")
@click.option("--lease-renew-s", type=float, help="Lease renewal interval [1].")
@click.option("--lease-kubeconfig", type=click.Path(path_type=Path, dir_okay=False),
              help="kubeconfig for the lease agent [the pod's service account].")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log level [INFO].")
@click.version_option(__version__, prog_name="velocity-engine")
@click.pass_context
def main(ctx: click.Context, /, config_file: Path | None, **flags: Any) -> None:
    """Velocity key-value engine: V-Proto over TLS 1.3 with token auth.

    Without --tls-cert/--tls-key it generates a CA and server certificate in
    DATA_DIR/tls/; without --auth-token-file or VDB_TOKEN it generates a client
    token in DATA_DIR/auth-token, and likewise the admin and replication tokens
    (DATA_DIR/admin-token, DATA_DIR/replication-token).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not flags["tls_san"]:
        flags["tls_san"] = None
    # Before reading the file: a change made while we read it is then seen by the watcher.
    stamp = file_stamp(config_file) if config_file is not None else None
    try:
        settings = load_settings(flags, config_file)
    except ConfigError as exc:
        click.echo(f"velocity-engine: {exc}", err=True)
        sys.exit(2)
    if settings.data_plane == "native":
        from velocity_engine.native import unsupported

        problems = unsupported(settings)
        if problems:
            click.echo(
                "velocity-engine: --data-plane native does not support " + "; ".join(problems), err=True
            )
            sys.exit(2)
    _setup_logging(settings.log_level)
    try:
        _run(settings, flags, config_file, stamp)
    except (TokenError, OSError, RestoreError, ImportError) as exc:
        log.error("cannot start: %s", exc)
        sys.exit(1)
    except CorruptionError as exc:
        log.error(
            "cannot start: %s\nRefusing to start rather than serve wrong or incomplete data. "
            "Run `velocity-engine check --data-dir %s` for details and `--repair` to cut the data off "
            "at the damage (losing what follows it).",
            exc, settings.data_dir,
        )
        sys.exit(3)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(
    settings: EngineSettings, flags: dict[str, Any], config_file: Path | None, stamp: FileStamp | None
) -> None:
    import uvloop

    from velocity_engine.native import NativeServer
    from velocity_engine.server import Server

    if settings.restore_from is not None and settings.data_plane == "native" and settings.storage == "lsm":
        from velocity_engine.native import restore_snapshot as restore_natively

        entries = restore_natively(settings.restore_from, settings.data_dir)
        log.info("restored %d keys from %s", entries or 0, settings.restore_from)
    elif settings.restore_from is not None:
        from velocity_engine.storage.snapshot import restore_snapshot

        info = restore_snapshot(settings.restore_from, settings.data_dir)
        log.info("restored %d keys from %s", info.entries, settings.restore_from)

    async def amain() -> None:
        server: Server | NativeServer = NativeServer(settings) if settings.data_plane == "native" else Server(settings)
        await server.start()
        reloader = server.enable_config_reload(flags, config_file, stamp)
        _print_connect_hint(server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
        await stop.wait()
        await server.stop()

    uvloop.run(amain())


def _print_connect_hint(server: Any) -> None:
    s = server.settings
    endpoint = f"vdb://{'127.0.0.1' if s.host in ('0.0.0.0', '::') else s.host}:{server.port}"
    if s.insecure:
        hint = f"velocityctl --endpoint {endpoint} --insecure ping"
    else:
        parts = [f"velocityctl --endpoint {endpoint}"]
        if server.tls.ca is not None:
            parts.append(f"--ca {server.tls.ca}")
        if server.token_path is not None:
            parts.append(f"--token-file {server.token_path}")
        hint = " ".join(parts) + " ping"
    print(f"Velocity is ready. Connect with:\n  {hint}", flush=True)


@main.command()
@click.option("--data-dir", "check_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), required=True,
              help="Data directory to check.")
@click.option("--repair", is_flag=True, help="Cut the WAL off at the first damage (what follows is lost).")
def check(check_dir: Path, repair: bool) -> None:
    """Check the WAL, manifest and SSTables of a stopped engine; explain any damage."""
    from velocity_engine.storage.check import check_data_dir, written_natively
    from velocity_engine.storage.filenames import storage_dir

    if written_natively(storage_dir(check_dir)):
        # WAL version 2: only velocity-lsm's checker reads it (the Python one would call
        # every record corrupt, and --repair would cut the log at its first byte).
        try:
            from velocity_engine import _core
        except ImportError:
            click.echo(
                f"velocity-engine: {storage_dir(check_dir)} was written by the native data plane "
                "(WAL version 2); build it (`make native`) to check this directory",
                err=True,
            )
            sys.exit(2)
        ok, lines = _core.check_dir(str(storage_dir(check_dir)), repair)
        for line in lines:
            click.echo(line)
        sys.exit(0 if ok else 1)
    ok = check_data_dir(check_dir, repair=repair, echo=click.echo)
    sys.exit(0 if ok else 1)
