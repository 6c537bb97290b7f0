"""`velocityctl`: talk to a Velocity server from the shell.

Exit codes: 0 success; 1 the key does not exist (get, ttl, pttl); 2 any other
error, with a one-line message on stderr; 130 interrupted. A closed pipe
(`velocityctl scan | head -1`) ends quietly with 0, as other Unix tools do.
Run without a command on a terminal for an interactive prompt (velocity_repl).
`--json` on every command that prints data prints one JSON document instead.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from vproto.errors import VelocityError

from velocity import __version__
from velocity.config import parse_url, read_token_file
from velocity.durations import parse_ttl_ms
from velocity.errors import ClientError, ConfigurationError
from velocity.errors import TimeoutError as VTimeoutError
from velocity.pool import VelocityPool

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    endpoint: str
    ca: Path | None
    token_file: Path | None
    admin_token_file: Path | None
    insecure: bool
    server_name: str | None
    timeout: float
    connect_timeout: float | None

    def _token(self, admin: bool) -> str | None:
        """The credential: for admin commands VDB_ADMIN_TOKEN, --admin-token-file / VDB_ADMIN_TOKEN_FILE,
        else the client token (VDB_TOKEN, then --token-file / VDB_TOKEN_FILE)."""
        try:
            if admin:
                if os.environ.get("VDB_ADMIN_TOKEN"):
                    return os.environ["VDB_ADMIN_TOKEN"].strip()
                if self.admin_token_file is not None:
                    return read_token_file(self.admin_token_file)
            if os.environ.get("VDB_TOKEN"):
                return os.environ["VDB_TOKEN"].strip()
            if self.token_file is not None:
                return read_token_file(self.token_file)
        except ConfigurationError as exc:
            fail(str(exc))
        return None

    def pool(self, pool_size: int = 1, *, admin: bool = False) -> VelocityPool:
        try:
            in_url = parse_url(self.endpoint)  # --endpoint may be a URL carrying a token or vdb+insecure://
        except ConfigurationError as exc:
            fail(str(exc))
        insecure = self.insecure or bool(in_url.get("insecure"))
        given = None if insecure else self._token(admin)
        if not insecure and not (given or in_url.get("token") or in_url.get("token_file")):
            fail("no token: pass --token-file FILE or set VDB_TOKEN (or --insecure for an insecure server)")
        try:
            return VelocityPool(
                node=self.endpoint, auth=given, ca=self.ca,
                pool_size=pool_size, insecure=insecure,
                server_name=self.server_name, timeout=self.timeout, connect_timeout=self.connect_timeout,
                client_name="velocityctl",
            )  # fmt: skip
        except VelocityError as exc:
            fail(str(exc))


def fail(message: str) -> NoReturn:
    click.echo(f"velocityctl: {message}", err=True)
    sys.exit(2)


def _describe(exc: BaseException, endpoint: str) -> str:
    """One line naming the cause: ours, the server's, or the local system's."""
    if isinstance(exc, VTimeoutError):
        return f"timed out: {exc}"
    if isinstance(exc, ClientError):
        return str(exc)  # already names the endpoint, the file, the hint
    if isinstance(exc, VelocityError):
        return str(exc)  # the server's coded error: "NOT_INTEGER: ..."
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__} talking to {endpoint}: {exc}"


def _aio_run(coro: Awaitable[T]) -> T:
    import uvloop

    async def main() -> T:
        return await coro

    result: T = uvloop.run(main())
    return result


def run(opts: Options, fn: Callable[[VelocityPool], Awaitable[T]], pool_size: int = 1, *, admin: bool = False) -> T:
    """Run `fn` with a connected pool; any failure becomes one line on stderr and exit code 2."""

    async def go() -> T:
        pool = opts.pool(pool_size, admin=admin)
        try:
            await pool.connect()
            return await fn(pool)
        finally:
            await pool.close()

    try:
        return _aio_run(go())
    except BrokenPipeError:
        raise
    except (VelocityError, OSError, ValueError) as exc:
        fail(_describe(exc, opts.endpoint))


def _json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def _emit(as_json: bool, data: Any, text: str | None = None) -> None:
    """Print `data` as JSON with --json, else `text` (when given)."""
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    elif text is not None:
        click.echo(text)


def _json_value(value: Any) -> Any:
    """A stored value as JSON can carry it: bytes as {"base64": ...}."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, str):
        return "str"
    if isinstance(value, int) and not isinstance(value, bool):
        return "int"
    return "json"


class _Stdin:
    """`-` as a value means standard input, read once (a second `-` is refused)."""

    used = False

    @classmethod
    def read(cls) -> bytes:
        if cls.used:
            fail("only one value can come from standard input ('-')")
        cls.used = True
        return sys.stdin.buffer.read()


def _parse_value(value: str, as_type: str) -> Any:
    raw: bytes | str = _Stdin.read() if value == "-" else value
    if as_type == "bytes":
        return raw if isinstance(raw, bytes) else raw.encode()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            fail("standard input is not UTF-8 text: use --type bytes")
    if as_type == "str":
        return raw
    if as_type == "int":
        try:
            return int(raw)
        except ValueError:
            fail(f"{raw!r} is not an integer")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"value is not valid JSON: {exc}")


def _check_ttl(ttl: str | None) -> None:
    if ttl is not None:
        try:
            parse_ttl_ms(ttl)
        except ValueError as exc:
            fail(str(exc))


_TYPE = click.option(
    "--type", "as_type", type=click.Choice(["str", "int", "json", "bytes"]), default="str", show_default=True,
    help="How to store the value(s).",
)  # fmt: skip


class _Cli(click.Group):
    """The command group, ending quietly on a closed pipe and with 130 on Ctrl-C."""

    def invoke(self, ctx: click.Context) -> Any:
        # Here, not in main(): click's main() turns EPIPE into exit code 1.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="velocityctl", message="%(prog)s %(version)s")
@click.option("--endpoint", envvar="VDB_ENDPOINT", default="vdb://127.0.0.1:2005", show_default=True,
              help="Server address or URL (env VDB_ENDPOINT), e.g. vdb://db.example:2005.")
@click.option("--ca", envvar="VDB_CA", type=click.Path(path_type=Path, dir_okay=False),
              help="CA certificate to trust (env VDB_CA); default: the system store.")
@click.option("--token-file", envvar="VDB_TOKEN_FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="File holding the auth token (env VDB_TOKEN_FILE); VDB_TOKEN wins over it.")
@click.option("--admin-token-file", envvar="VDB_ADMIN_TOKEN_FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="File holding the admin token, used by promote, switchover, replicaof and snapshot "
                   "(env VDB_ADMIN_TOKEN_FILE; VDB_ADMIN_TOKEN wins over it); default: the auth token.")
@click.option("--insecure", is_flag=True, envvar="VDB_INSECURE",
              help="Plaintext without auth, for servers started with --insecure (env VDB_INSECURE=1).")
@click.option("--server-name", help="TLS server name to verify, when it differs from the endpoint host.")
@click.option("--timeout", type=float, envvar="VDB_TIMEOUT", default=10.0, show_default=True,
              help="Seconds per request (env VDB_TIMEOUT).")
@click.option("--connect-timeout", type=float, envvar="VDB_CONNECT_TIMEOUT",
              help="Seconds to connect (TCP, TLS, HELLO; env VDB_CONNECT_TIMEOUT) [default: 5].")
@click.pass_context
def main(ctx: click.Context, endpoint: str, ca: Path | None, token_file: Path | None, admin_token_file: Path | None,
         insecure: bool, server_name: str | None, timeout: float, connect_timeout: float | None) -> None:
    """Command-line client for Velocity. Without a command on a terminal: an interactive prompt."""
    if timeout <= 0 or (connect_timeout is not None and connect_timeout <= 0):
        fail("--timeout and --connect-timeout must be positive")
    ctx.obj = Options(endpoint, ca, token_file, admin_token_file, insecure, server_name, timeout, connect_timeout)
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from velocity.repl import repl

            repl(ctx)
            return
        click.echo(ctx.get_help(), err=True)
        sys.exit(2)


pass_opts = click.make_pass_decorator(Options)


def _out(value: Any) -> None:
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value + b"\n")
        sys.stdout.flush()
    elif isinstance(value, str):
        click.echo(value)
    else:
        click.echo(json.dumps(value))


@main.command()
@_json_option
@pass_opts
def ping(opts: Options, as_json: bool) -> None:
    """Check that the server answers (prints PONG and the round-trip time)."""

    async def go(p: VelocityPool) -> float:
        t0 = time.perf_counter()
        await p.ping()
        return time.perf_counter() - t0

    ms = run(opts, go) * 1000
    _emit(as_json, {"pong": True, "rtt_ms": round(ms, 3)}, f"PONG {ms:.2f} ms")


@main.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", help="Expire after this long: 30s, 1500ms, 2h, 1h30m, or seconds.")
@click.option("--nx", is_flag=True, help="Only if the key does not exist.")
@click.option("--xx", is_flag=True, help="Only if the key exists.")
@_TYPE
@_json_option
@pass_opts
def set_(opts: Options, key: str, value: str, ttl: str | None, nx: bool, xx: bool, as_type: str,
         as_json: bool) -> None:
    """Store VALUE under KEY (prints OK, or NOT SET when a condition failed). VALUE '-' reads standard input."""
    v = _parse_value(value, as_type)
    _check_ttl(ttl)
    ok = run(opts, lambda p: p.set(key, v, ttl=ttl, nx=nx, xx=xx))
    _emit(as_json, {"key": key, "written": ok}, "OK" if ok else "NOT SET")


@main.command()
@click.argument("key")
@_json_option
@pass_opts
def get(opts: Options, key: str, as_json: bool) -> None:
    """Print the value of KEY; a missing key prints nothing and exits 1 (with --json: found false)."""
    missing = object()
    value = run(opts, lambda p: p.get(key, missing))
    if value is missing:
        if as_json:
            _emit(True, {"key": key, "found": False})
        sys.exit(1)
    if as_json:
        _emit(True, {"key": key, "found": True, "type": _type_name(value), "value": _json_value(value)})
    else:
        _out(value)


@main.command()
@click.argument("keys", nargs=-1, required=True)
@_json_option
@pass_opts
def mget(opts: Options, keys: tuple[str, ...], as_json: bool) -> None:
    """Print the values of KEYS in one request, one line each (an empty line for a missing key)."""
    missing = object()
    values = run(opts, lambda p: p.mget(keys, missing))
    if as_json:
        rows = [{"key": k, "found": False} if v is missing else
                {"key": k, "found": True, "type": _type_name(v), "value": _json_value(v)}
                for k, v in zip(keys, values, strict=True)]  # fmt: skip
        _emit(True, rows)
        return
    for v in values:
        _out(b"" if v is missing else v)


@main.command()
@click.argument("pairs", nargs=-1, required=True, metavar="KEY VALUE [KEY VALUE]...")
@click.option("--ttl", help="Expire every key after this long.")
@_TYPE
@_json_option
@pass_opts
def mset(opts: Options, pairs: tuple[str, ...], ttl: str | None, as_type: str, as_json: bool) -> None:
    """Store every KEY VALUE pair atomically (all or none); prints OK. One VALUE may be '-' (stdin)."""
    if len(pairs) % 2:
        fail("mset takes KEY VALUE pairs: the last key has no value")
    _check_ttl(ttl)
    mapping: dict[str | bytes, Any] = {pairs[i]: _parse_value(pairs[i + 1], as_type) for i in range(0, len(pairs), 2)}
    run(opts, lambda p: p.mset(mapping, ttl=ttl))
    _emit(as_json, {"written": len(mapping)}, "OK")


@main.command()
@click.argument("key")
@click.argument("expected")
@click.argument("new")
@click.option("--absent", is_flag=True, help="Expect KEY not to exist (EXPECTED is then ignored; write '').")
@click.option("--ttl", help="Expire after this long.")
@_TYPE
@_json_option
@pass_opts
def cas(opts: Options, key: str, expected: str, new: str, absent: bool, ttl: str | None, as_type: str,
        as_json: bool) -> None:
    """Compare-and-set: store NEW under KEY only if its value is EXPECTED (prints OK, or NOT SET).

    Both values are read with --type; either may be '-' (standard input)."""
    exp = None if absent else _parse_value(expected, as_type)
    v = _parse_value(new, as_type)
    _check_ttl(ttl)
    ok = run(opts, lambda p: p.cas(key, exp, v, ttl=ttl))
    _emit(as_json, {"key": key, "applied": ok}, "OK" if ok else "NOT SET")


# Negative amounts ("incr KEY -1") are numbers, not options.
_NUMERIC_ARGS = {"ignore_unknown_options": True}


@main.command(context_settings=_NUMERIC_ARGS)
@click.argument("key")
@click.argument("by", type=int, default=1)
@_json_option
@pass_opts
def incr(opts: Options, key: str, by: int, as_json: bool) -> None:
    """Add BY (default 1, may be negative) to KEY atomically; prints the new value."""
    n = run(opts, lambda p: p.incr(key, by))
    _emit(as_json, {"key": key, "value": n}, str(n))


@main.command(context_settings=_NUMERIC_ARGS)
@click.argument("key")
@click.argument("by", type=int, default=1)
@_json_option
@pass_opts
def decr(opts: Options, key: str, by: int, as_json: bool) -> None:
    """Subtract BY (default 1) from KEY atomically; prints the new value."""
    n = run(opts, lambda p: p.decr(key, by))
    _emit(as_json, {"key": key, "value": n}, str(n))


@main.command("del")
@click.argument("key")
@_json_option
@pass_opts
def del_(opts: Options, key: str, as_json: bool) -> None:
    """Delete KEY (prints 1 if it existed, 0 if not)."""
    gone = run(opts, lambda p: p.delete(key))
    _emit(as_json, {"key": key, "deleted": gone}, "1" if gone else "0")


@main.command()
@click.argument("key")
@_json_option
@pass_opts
def exists(opts: Options, key: str, as_json: bool) -> None:
    """Print 1 if KEY exists, else 0."""
    found = run(opts, lambda p: p.exists(key))
    _emit(as_json, {"key": key, "exists": found}, "1" if found else "0")


@main.command()
@click.argument("key")
@_json_option
@pass_opts
def ttl(opts: Options, key: str, as_json: bool) -> None:
    """Seconds left before KEY expires; -1 when it never does; a missing key exits 1."""
    ms = run(opts, lambda p: p.pttl(key))
    if as_json:
        _emit(True, {"key": key, "exists": ms != -2, "ttl_s": ms / 1000 if ms >= 0 else None})
    if ms == -2:
        sys.exit(1)
    if not as_json:
        click.echo("-1" if ms == -1 else f"{ms / 1000:.3f}")


@main.command()
@click.argument("key")
@_json_option
@pass_opts
def pttl(opts: Options, key: str, as_json: bool) -> None:
    """Milliseconds left before KEY expires; -1 when it never does, -2 (and exit 1) when it does not exist."""
    ms = run(opts, lambda p: p.pttl(key))
    _emit(as_json, {"key": key, "pttl_ms": ms}, str(ms))
    if ms == -2:
        sys.exit(1)


@main.command()
@click.argument("key")
@click.argument("ttl_value", metavar="TTL")
@_json_option
@pass_opts
def expire(opts: Options, key: str, ttl_value: str, as_json: bool) -> None:
    """Make KEY expire after TTL (prints 1, or 0 if the key does not exist)."""
    _check_ttl(ttl_value)
    ok = run(opts, lambda p: p.expire(key, ttl_value))
    _emit(as_json, {"key": key, "applied": ok}, "1" if ok else "0")


@main.command()
@click.argument("key")
@_json_option
@pass_opts
def persist(opts: Options, key: str, as_json: bool) -> None:
    """Remove KEY's expiry (prints 1 if it had one)."""
    ok = run(opts, lambda p: p.persist(key))
    _emit(as_json, {"key": key, "applied": ok}, "1" if ok else "0")


@main.command()
@click.argument("prefix", default="")
@click.option("--count", type=int, default=1000, show_default=True, help="Keys fetched per round trip.")
@click.option("--limit", type=int, default=0, help="Stop after this many keys (0: no limit).")
@_json_option
@pass_opts
def scan(opts: Options, prefix: str, count: int, limit: int, as_json: bool) -> None:
    """List keys starting with PREFIX, in byte order, one per line (--json: one array, streamed)."""

    async def go(p: VelocityPool) -> None:
        n = 0
        out = sys.stdout
        if as_json:
            out.write("[")
        async for key in p.scan(prefix, count=count):
            if as_json:
                out.write(("\n  " if n == 0 else ",\n  ") + json.dumps(key))
            else:
                out.write(key + "\n")
            n += 1
            if n % 1000 == 0:
                out.flush()
            if limit and n >= limit:
                break
        if as_json:
            out.write("\n]\n" if n else "]\n")
        out.flush()

    run(opts, go)


@main.command()
@_json_option
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
@_json_option
@pass_opts
def promote(opts: Options, min_epoch: int, as_json: bool) -> None:
    """Make this replica the primary (new epoch); it then fences its former primary. Admin token."""
    epoch, seq = run(opts, lambda p: p.promote(min_epoch), admin=True)
    _emit(as_json, {"epoch": epoch, "seq": seq}, f"primary of epoch {epoch} at seq {seq}")


@main.command()
@click.argument("target")
@click.option("--catch-up-timeout", type=float, default=5.0, show_default=True,
              help="Seconds the target may take to receive the primary's last writes "
                   "(without a Lease; under Lease election the primary allows 1.5 s).")
@_json_option
@pass_opts
def switchover(opts: Options, target: str, catch_up_timeout: float, as_json: bool) -> None:
    """Planned switchover: make replica TARGET the primary without losing acknowledged writes. Admin token.

    Run against the current primary (--endpoint): it stops taking writes, TARGET
    receives everything it has, TARGET is promoted, and the old primary follows it.
    Under Lease election the primary does all of it, moving the Lease to TARGET.
    """
    epoch, seq, pause_s = run(opts, lambda p: p.switchover(target, catch_up_timeout), admin=True)
    _emit(as_json, {"target": target, "epoch": epoch, "seq": seq, "pause_ms": round(pause_s * 1000, 3)},
          f"{target} is the primary of epoch {epoch} at seq {seq}; writes paused {pause_s * 1000:.0f} ms")


@main.command("replicaof")
@click.argument("primary")
@click.option("--epoch", type=int, default=0, help="Epoch of the new primary (refused if older than the node's).")
@_json_option
@pass_opts
def replicaof(opts: Options, primary: str, epoch: int, as_json: bool) -> None:
    """Make this node follow PRIMARY (vdb://HOST:PORT); a primary steps down first. Admin token."""
    new_epoch = run(opts, lambda p: p.replica_of(primary, epoch), admin=True)
    _emit(as_json, {"primary": primary, "epoch": new_epoch}, f"following {primary} (epoch {new_epoch})")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_json_option
@pass_opts
def snapshot(opts: Options, file: Path, quiet: bool, as_json: bool) -> None:
    """Download a consistent point-in-time snapshot to FILE (restore: velocity-engine --restore-from FILE).
    Admin token."""
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet or as_json:
            return
        if bar is None:
            bar = click.progressbar(length=total, label=f"snapshot -> {file}", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        size = run(opts, lambda p: p.snapshot(file, progress), admin=True)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    _emit(as_json, {"file": str(file), "bytes": size}, f"wrote {file} ({size} bytes)")


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
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: velocityctl completion bash > ~/.local/share/bash-completion/completions/velocityctl
    zsh:  velocityctl completion zsh > "${fpath[1]}/_velocityctl"
    fish: velocityctl completion fish > ~/.config/fish/completions/velocityctl.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(main, {}, "velocityctl", "_VELOCITYCTL_COMPLETE").source())


@main.command()
@click.option("-c", "--connections", type=int, default=50, show_default=True, help="Parallel connections.")
@click.option("-n", "--requests", type=int, default=100_000, show_default=True, help="Requests per operation.")
@click.option("-P", "--pipeline", type=int, default=1, show_default=True, help="Requests in flight per connection.")
@click.option("-d", "--data-size", type=int, default=64, show_default=True, help="Value size in bytes.")
@click.option("-r", "--keyspace", type=int, default=10_000, show_default=True, help="Distinct keys used.")
@click.option("-t", "--tests", default="set,get,incr", show_default=True, help="Operations to run.")
@_json_option
@pass_opts
def bench(opts: Options, connections: int, requests: int, pipeline: int, data_size: int, keyspace: int,
          tests: str, as_json: bool) -> None:
    """Load the server with GET/SET/INCR and report ops/s and latency percentiles.

    Ctrl-C stops early and prints what was measured. A row says `client-bound`
    when this process used most of a CPU: the server may do more than shown."""
    from velocity.bench import run_bench

    ops = [t.strip().lower() for t in tests.split(",") if t.strip()]
    bad = [o for o in ops if o not in ("get", "set", "incr")]
    if bad:
        fail(f"unknown bench operations: {', '.join(bad)} (have get, set, incr)")
    if min(connections, requests, pipeline, keyspace) < 1 or data_size < 0:
        fail("connections, requests, pipeline and keyspace must be positive")
    pool = opts.pool(connections)
    try:
        results = _aio_run(run_bench(pool, ops, requests, connections, pipeline, data_size, keyspace,
                                     progress=not as_json))
    except (VelocityError, OSError, ValueError) as exc:
        fail(_describe(exc, opts.endpoint))
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            note = "   INTERRUPTED" if r["interrupted"] else ""
            if r["client_bound"]:
                note += f"   client-bound (client CPU {r['client_cpu']:.0%})"
            click.echo(
                f"{r['op'].upper():5} {r['ops_per_sec']:>10,.0f} ops/s   p50 {r['p50_ms']:.3f} ms   "
                f"p99 {r['p99_ms']:.3f} ms   p999 {r['p999_ms']:.3f} ms   "
                f"({r['requests']} requests, {r['errors']} errors){note}"
            )
    if any(r["interrupted"] for r in results):
        sys.exit(130)


def _quiet_broken_pipe() -> NoReturn:
    # The reader went away (`| head -1`): stop quietly with 0. Python would complain
    # again when it flushes stdout at exit, so point stdout at /dev/null first.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os._exit(0)
