"""`velocityctl`: talk to a Velocity server from the shell.

Exit codes: 0 success; 1 the key does not exist (get, ttl); 2 any other error,
with a one-line message on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from vproto.errors import VelocityError

from velocity.durations import parse_ttl_ms
from velocity.pool import VelocityPool

T = TypeVar("T")


@dataclass
class Options:
    endpoint: str
    ca: Path | None
    token_file: Path | None
    insecure: bool
    server_name: str | None
    timeout: float

    def pool(self, pool_size: int = 1) -> VelocityPool:
        token = os.environ.get("VDB_TOKEN")
        if token is None and self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                fail(f"cannot read token file {self.token_file}: {exc.strerror}")
        if not self.insecure and not token:
            fail("no token: pass --token-file FILE or set VDB_TOKEN (or --insecure for an insecure server)")
        return VelocityPool(
            node=self.endpoint,
            auth=token,
            ca=self.ca,
            pool_size=pool_size,
            insecure=self.insecure,
            server_name=self.server_name,
            timeout=self.timeout,
            client_name="velocityctl",
        )


def fail(message: str) -> NoReturn:
    click.echo(f"velocityctl: {message}", err=True)
    sys.exit(2)


def run(opts: Options, fn: Callable[[VelocityPool], Awaitable[T]], pool_size: int = 1) -> T:
    async def go() -> T:
        pool = opts.pool(pool_size)
        try:
            await pool.connect()
            return await fn(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(go())
    except VelocityError as exc:
        fail(str(exc))
    except (ConnectionError, OSError) as exc:
        fail(f"cannot reach {opts.endpoint}: {exc}")
    except TimeoutError:
        fail(f"timed out talking to {opts.endpoint}")
    except ValueError as exc:
        fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint", envvar="VDB_ENDPOINT", default="vdb://127.0.0.1:2005", show_default=True,
              help="Server address (env VDB_ENDPOINT).")
@click.option("--ca", envvar="VDB_CA", type=click.Path(path_type=Path, dir_okay=False),
              help="CA certificate to trust (env VDB_CA); default: the system store.")
@click.option("--token-file", envvar="VDB_TOKEN_FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="File holding the auth token (env VDB_TOKEN_FILE); VDB_TOKEN wins over it.")
@click.option("--insecure", is_flag=True, help="Plaintext without auth (servers started with --insecure).")
@click.option("--server-name", help="TLS server name to verify, when it differs from the endpoint host.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per request.")
@click.pass_context
def main(ctx: click.Context, endpoint: str, ca: Path | None, token_file: Path | None, insecure: bool,
         server_name: str | None, timeout: float) -> None:
    """Command-line client for Velocity."""
    ctx.obj = Options(endpoint, ca, token_file, insecure, server_name, timeout)


pass_opts = click.make_pass_decorator(Options)


def _out(value: Any) -> None:
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value + b"\n")
        sys.stdout.flush()
    elif isinstance(value, str):
        click.echo(value)
    else:
        click.echo(json.dumps(value))


def _parse_value(value: str, as_type: str) -> Any:
    if as_type == "str":
        return value
    if as_type == "int":
        try:
            return int(value)
        except ValueError:
            fail(f"{value!r} is not an integer")
    if as_type == "json":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            fail(f"value is not valid JSON: {exc}")
    return value.encode()


@main.command()
@pass_opts
def ping(opts: Options) -> None:
    """Check that the server answers (prints PONG and the round-trip time)."""
    import time

    async def go(p: VelocityPool) -> float:
        t0 = time.perf_counter()
        await p.ping()
        return time.perf_counter() - t0

    click.echo(f"PONG {run(opts, go) * 1000:.2f} ms")


@main.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", help="Expire after this long: 30s, 1500ms, 2h, 1h30m, or seconds.")
@click.option("--nx", is_flag=True, help="Only if the key does not exist.")
@click.option("--xx", is_flag=True, help="Only if the key exists.")
@click.option("--type", "as_type", type=click.Choice(["str", "int", "json", "bytes"]), default="str",
              show_default=True, help="How to store VALUE.")
@pass_opts
def set_(opts: Options, key: str, value: str, ttl: str | None, nx: bool, xx: bool, as_type: str) -> None:
    """Store VALUE under KEY (prints OK, or NOT SET when a condition failed)."""
    v = _parse_value(value, as_type)
    if ttl is not None:
        try:
            parse_ttl_ms(ttl)
        except ValueError as exc:
            fail(str(exc))
    ok = run(opts, lambda p: p.set(key, v, ttl=ttl, nx=nx, xx=xx))
    click.echo("OK" if ok else "NOT SET")


@main.command()
@click.argument("key")
@pass_opts
def get(opts: Options, key: str) -> None:
    """Print the value of KEY; a missing key prints nothing and exits 1."""
    missing = object()
    value = run(opts, lambda p: p.get(key, missing))
    if value is missing:
        sys.exit(1)
    _out(value)


# Negative amounts ("incr KEY -1") are numbers, not options.
_NUMERIC_ARGS = {"ignore_unknown_options": True}


@main.command(context_settings=_NUMERIC_ARGS)
@click.argument("key")
@click.argument("by", type=int, default=1)
@pass_opts
def incr(opts: Options, key: str, by: int) -> None:
    """Add BY (default 1, may be negative) to KEY atomically; prints the new value."""
    click.echo(run(opts, lambda p: p.incr(key, by)))


@main.command(context_settings=_NUMERIC_ARGS)
@click.argument("key")
@click.argument("by", type=int, default=1)
@pass_opts
def decr(opts: Options, key: str, by: int) -> None:
    """Subtract BY (default 1) from KEY atomically; prints the new value."""
    click.echo(run(opts, lambda p: p.decr(key, by)))


@main.command("del")
@click.argument("key")
@pass_opts
def del_(opts: Options, key: str) -> None:
    """Delete KEY (prints 1 if it existed, 0 if not)."""
    click.echo(1 if run(opts, lambda p: p.delete(key)) else 0)


@main.command()
@click.argument("key")
@pass_opts
def exists(opts: Options, key: str) -> None:
    """Print 1 if KEY exists, else 0."""
    click.echo(1 if run(opts, lambda p: p.exists(key)) else 0)


@main.command()
@click.argument("key")
@pass_opts
def ttl(opts: Options, key: str) -> None:
    """Seconds left before KEY expires; -1 when it never does; a missing key exits 1."""
    ms = run(opts, lambda p: p.pttl(key))
    if ms == -2:
        sys.exit(1)
    click.echo("-1" if ms == -1 else f"{ms / 1000:.3f}")


@main.command()
@click.argument("key")
@click.argument("ttl_value", metavar="TTL")
@pass_opts
def expire(opts: Options, key: str, ttl_value: str) -> None:
    """Make KEY expire after TTL (prints 1, or 0 if the key does not exist)."""
    click.echo(1 if run(opts, lambda p: p.expire(key, ttl_value)) else 0)


@main.command()
@click.argument("key")
@pass_opts
def persist(opts: Options, key: str) -> None:
    """Remove KEY's expiry (prints 1 if it had one)."""
    click.echo(1 if run(opts, lambda p: p.persist(key)) else 0)


@main.command()
@click.argument("prefix", default="")
@click.option("--count", type=int, default=1000, show_default=True, help="Keys fetched per round trip.")
@click.option("--limit", type=int, default=0, help="Stop after this many keys (0: no limit).")
@pass_opts
def scan(opts: Options, prefix: str, count: int, limit: int) -> None:
    """List keys starting with PREFIX, in byte order, one per line."""

    async def go(p: VelocityPool) -> None:
        n = 0
        async for key in p.scan(prefix, count=count):
            click.echo(key)
            n += 1
            if limit and n >= limit:
                return

    run(opts, go)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON document.")
@click.argument("section", required=False)
@pass_opts
def info(opts: Options, as_json: bool, section: str | None) -> None:
    """Server information: version, clients, keys, memory, storage, latency."""
    data = run(opts, lambda p: p.info(section))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for line in _flatten(data):
        click.echo(line)


@main.command()
@click.option("--min-epoch", type=int, default=0, show_default=True,
              help="The new epoch is above this (and above every epoch the node has seen).")
@pass_opts
def promote(opts: Options, min_epoch: int) -> None:
    """Make this replica the primary (new epoch); it then fences its former primary."""
    epoch, seq = run(opts, lambda p: p.promote(min_epoch))
    click.echo(f"primary of epoch {epoch} at seq {seq}")


@main.command()
@click.argument("target")
@click.option("--catch-up-timeout", type=float, default=5.0, show_default=True,
              help="Seconds the target may take to receive the primary's last writes "
                   "(without a Lease; under Lease election the primary allows 1.5 s).")
@pass_opts
def switchover(opts: Options, target: str, catch_up_timeout: float) -> None:
    """Planned switchover: make replica TARGET the primary without losing acknowledged writes.

    Run against the current primary (--endpoint): it stops taking writes, TARGET
    receives everything it has, TARGET is promoted, and the old primary follows it.
    Under Lease election the primary does all of it, moving the Lease to TARGET.
    """
    epoch, seq, pause_s = run(opts, lambda p: p.switchover(target, catch_up_timeout))
    click.echo(f"{target} is the primary of epoch {epoch} at seq {seq}; writes paused {pause_s * 1000:.0f} ms")


@main.command("replicaof")
@click.argument("primary")
@click.option("--epoch", type=int, default=0, help="Epoch of the new primary (refused if older than the node's).")
@pass_opts
def replicaof(opts: Options, primary: str, epoch: int) -> None:
    """Make this node follow PRIMARY (vdb://HOST:PORT); a primary steps down first."""
    new_epoch = run(opts, lambda p: p.replica_of(primary, epoch))
    click.echo(f"following {primary} (epoch {new_epoch})")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@pass_opts
def snapshot(opts: Options, file: Path, quiet: bool) -> None:
    """Download a consistent point-in-time snapshot to FILE (restore: velocity-engine --restore-from FILE)."""
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = click.progressbar(length=total, label=f"snapshot -> {file}", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        size = run(opts, lambda p: p.snapshot(file, progress))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"wrote {file} ({size} bytes)")


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for k in sorted(data):
        v = data[k]
        if isinstance(v, dict):
            lines += _flatten(v, f"{prefix}{k}.")
        else:
            lines.append(f"{prefix}{k}: {v}")
    return lines


@main.command()
@click.option("-c", "--connections", type=int, default=50, show_default=True, help="Parallel connections.")
@click.option("-n", "--requests", type=int, default=100_000, show_default=True, help="Requests per operation.")
@click.option("-P", "--pipeline", type=int, default=1, show_default=True, help="Requests in flight per connection.")
@click.option("-d", "--data-size", type=int, default=64, show_default=True, help="Value size in bytes.")
@click.option("-r", "--keyspace", type=int, default=10_000, show_default=True, help="Distinct keys used.")
@click.option("-t", "--tests", default="set,get,incr", show_default=True, help="Operations to run.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@pass_opts
def bench(opts: Options, connections: int, requests: int, pipeline: int, data_size: int, keyspace: int,
          tests: str, as_json: bool) -> None:
    """Load the server with GET/SET/INCR and report ops/s and latency percentiles."""
    from velocity.bench import run_bench

    ops = [t.strip().lower() for t in tests.split(",") if t.strip()]
    bad = [o for o in ops if o not in ("get", "set", "incr")]
    if bad:
        fail(f"unknown bench operations: {', '.join(bad)} (have get, set, incr)")
    if min(connections, requests, pipeline, keyspace) < 1 or data_size < 0:
        fail("connections, requests, pipeline and keyspace must be positive")
    try:
        results = asyncio.run(
            run_bench(opts.pool(connections), ops, requests, connections, pipeline, data_size, keyspace,
                      progress=not as_json)
        )
    except VelocityError as exc:
        fail(str(exc))
    except (ConnectionError, OSError) as exc:
        fail(f"cannot reach {opts.endpoint}: {exc}")
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for r in results:
        click.echo(
            f"{r['op'].upper():5} {r['ops_per_sec']:>10,.0f} ops/s   p50 {r['p50_ms']:.3f} ms   "
            f"p99 {r['p99_ms']:.3f} ms   p999 {r['p999_ms']:.3f} ms   ({r['requests']} requests, {r['errors']} errors)"
        )
