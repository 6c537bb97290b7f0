"""velocityctl's interactive prompt, driven through a pseudo-terminal as a user types."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine_proc import CTL, EngineProcess

ANSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\r")


class Terminal:
    """velocityctl on a pty: `send` types a line, `expect` waits for text on the screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.screen = b""
        self.returncode: int | None = None

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Wait until `text` appears after what earlier expects consumed; returns the text before it."""
        want = text.encode()
        deadline = time.monotonic() + timeout
        while want not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen; screen: {self.screen.decode(errors='replace')!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the other side closed
                    chunk = b""
                if not chunk:
                    assert want in self.screen, f"{text!r} not seen before exit: {self.screen!r}"
                    break
                self.screen += ANSI.sub(b"", chunk)
        before, _, self.screen = self.screen.partition(want)
        return before.decode(errors="replace")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        """Read the screen until the program exits (closing the pty first would fail its last write)."""
        if self.returncode is not None:
            return self.returncode
        deadline = time.monotonic() + 30
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    try:
                        self.screen += os.read(self.master, 65536)
                    except OSError:
                        break
            self.returncode = self.proc.wait(max(0.1, deadline - time.monotonic()))
            return self.returncode
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.returncode = self.proc.wait()
            with contextlib.suppress(OSError):
                os.close(self.master)


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("repl")) as e:
        yield e


def start(eng: EngineProcess, home: Path) -> Terminal:
    env = {**eng.ctl_env(), "HOME": str(home), "TERM": "dumb", "VDB_HISTFILE": str(home / "history")}
    return Terminal(eng.ctl_args(), env)


def test_repl_runs_commands_help_errors_and_keeps_history(eng: EngineProcess, tmp_path: Path) -> None:
    prompt = f"127.0.0.1:{eng.port}> "
    t = start(eng, tmp_path)
    try:
        t.expect(prompt)
        t.send('set greeting "hello world"')
        assert t.expect(prompt).strip().endswith("OK")
        t.send("get greeting")
        assert t.expect(prompt).strip().endswith("hello world")
        t.send("incr visits 5")
        assert t.expect(prompt).strip().endswith("5")
        t.send("get no-such-key")
        assert t.expect(prompt).strip().endswith("(nil)")
        t.send("incr greeting")
        assert "NOT_INTEGER" in t.expect(prompt)  # an error, and the prompt comes back
        t.send("mget greeting visits --json")
        assert '"value": 5' in t.expect(prompt)
        t.send("help")
        listing = t.expect(prompt)
        assert "mget" in listing and "switchover" in listing and "quit" in listing
        t.send("help set")
        assert "--ttl" in t.expect(prompt)
        t.send("frobnicate")
        assert "unknown command" in t.expect(prompt)
        t.send("quit")
        assert t.close() == 0
    finally:
        t.close()
    history = (tmp_path / "history").read_text()
    assert "get greeting" in history and "incr visits 5" in history
    # The server saw it all.
    assert eng.ctl("get", "visits").stdout == b"5\n"


def test_repl_ends_on_ctrl_d(eng: EngineProcess, tmp_path: Path) -> None:
    t = start(eng, tmp_path)
    try:
        t.expect("> ")
        os.write(t.master, b"\x04")  # Ctrl-D on an empty line
        assert t.close() == 0
    finally:
        t.close()


def test_no_command_without_a_terminal_prints_usage_and_exits_2(eng: EngineProcess) -> None:
    r = subprocess.run([CTL], capture_output=True, stdin=subprocess.DEVNULL, env=eng.ctl_env())
    assert r.returncode == 2 and b"Usage" in r.stderr
