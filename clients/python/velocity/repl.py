"""velocityctl's interactive prompt, as redis-cli's: `velocityctl` with no command on a terminal.

    127.0.0.1:2005> set k v
    OK
    127.0.0.1:2005> get k
    v
    127.0.0.1:2005> help get

Every velocityctl command works, with the connection options given on the
command line. Line editing and history come from readline; history is kept in
~/.velocityctl_history (VDB_HISTFILE overrides it; empty disables it).
A missing key prints (nil); errors print one line and the prompt comes back.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

import click

from velocity.connection import Endpoint

_HISTORY_LINES = 1000


def _history_file() -> Path | None:
    configured = os.environ.get("VDB_HISTFILE")
    if configured is not None:
        return Path(configured) if configured else None
    return Path.home() / ".velocityctl_history"


def _setup_readline(group: click.Group, ctx: click.Context) -> Path | None:
    try:
        import readline
    except ImportError:  # not on every platform; input() still works
        return None
    names = [*sorted(group.list_commands(ctx)), "help", "quit", "exit"]

    def complete(text: str, state: int) -> str | None:
        if readline.get_line_buffer()[: readline.get_begidx()].strip():
            return None  # only the command word is completed
        matches = [n + " " for n in names if n.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    path = _history_file()
    if path is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
        readline.set_history_length(_HISTORY_LINES)
    return path


def _save_history(path: Path | None) -> None:
    if path is None:
        return
    try:
        import readline

        readline.write_history_file(path)
    except (ImportError, OSError):
        pass


def _prompt(endpoint: str) -> str:
    try:
        e = Endpoint.parse(endpoint.split("?", 1)[0].split("@", 1)[-1].replace("vdb+insecure://", ""))
        return f"{e.host}:{e.port}> "
    except ValueError:
        return "velocity> "


def _help(group: click.Group, ctx: click.Context, args: list[str]) -> None:
    if args:
        cmd = group.get_command(ctx, args[0])
        if cmd is None:
            click.echo(f"(error) unknown command {args[0]!r}; type help for the list")
            return
        with click.Context(cmd, info_name=args[0], parent=ctx) as sub:
            click.echo(cmd.get_help(sub))
        return
    click.echo("Commands (help COMMAND for its options; quit or Ctrl-D to leave):")
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None and name != "completion":
            click.echo(f"  {name:<11} {cmd.get_short_help_str(70)}")


def run_line(group: click.Group, ctx: click.Context, line: str) -> bool:
    """Run one prompt line; False when the user asked to leave."""
    from velocity import cli

    try:
        args = shlex.split(line)
    except ValueError as exc:
        click.echo(f"(error) {exc}")
        return True
    if not args:
        return True
    name, rest = args[0].lower(), args[1:]
    if name in ("quit", "exit"):
        return False
    if name in ("help", "?"):
        _help(group, ctx, rest)
        return True
    cmd = group.get_command(ctx, name)
    if cmd is None:
        click.echo(f"(error) unknown command {args[0]!r}; type help for the list")
        return True
    cli._Stdin.used = False
    try:
        with cmd.make_context(name, rest, parent=ctx) as sub:
            cmd.invoke(sub)
    except click.ClickException as exc:
        exc.show()
    except click.exceptions.Exit:
        pass
    except click.Abort:
        click.echo("")
    except SystemExit as exc:
        if exc.code == 1 and name in ("get", "ttl", "pttl"):
            click.echo("(nil)")
    except KeyboardInterrupt:
        click.echo("")
    return True


def repl(ctx: click.Context) -> None:
    """Read commands from the terminal until quit, exit or Ctrl-D."""
    group = ctx.command
    assert isinstance(group, click.Group)
    opts = ctx.obj
    history = _setup_readline(group, ctx)
    prompt = _prompt(opts.endpoint)
    from velocity import __version__

    click.echo(f"velocityctl {__version__}: commands go to {opts.endpoint}; type help, or quit to leave.")
    try:
        while True:
            try:
                line = input(prompt)
            except EOFError:
                click.echo("")
                break
            except KeyboardInterrupt:
                click.echo("")
                continue
            if not run_line(group, ctx, line):
                break
    finally:
        _save_history(history)
    sys.stdout.flush()
