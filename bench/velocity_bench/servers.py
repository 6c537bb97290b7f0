"""One server process under test: start it on free loopback ports in its own
work directory and process group, read what it says about itself (version,
storage and fsync mode), and stop it (the whole process group) in any case."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from velocity_bench.certs import make_test_certs
from velocity_bench.scenarios import Scenario
from velocity_bench.tools import engine_cmd


class ServerError(RuntimeError):
    """The server did not start or answer; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server started for one scenario. Owns its process group and workdir contents."""

    scenario: Scenario
    workdir: Path
    pin: str | None  # taskset CPU list, or None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    version: str = ""
    token: str = ""
    ca: Path | None = None
    command: str = ""
    # What the server reports about itself, e.g. {"storage": "lsm", "appendfsync": "everysec", "tls": True}.
    persistence: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerError(f"{self.scenario.name}: not started")
        return self.proc.pid

    @property
    def logfile(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> None:
        if self.scenario.server == "redis":
            self._start_redis()
        else:
            self._start_velocity()

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        if self.pin is not None:
            cmd = ["taskset", "-c", self.pin, *cmd]
        self.command = " ".join(cmd)
        with self.logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: stop() kills wrapper and server alike
                env=env,
            )

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise ServerError(f"{self.scenario.name} exited with {code}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.05)
        raise ServerError(f"{self.scenario.name} not accepting connections on {self.port}:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        if self.logfile.exists():
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    # -- redis ------------------------------------------------------------------

    def _start_redis(self) -> None:
        sc = self.scenario
        self.port = free_port()
        data = self.workdir / "data"
        data.mkdir()
        cmd = [
            "redis-server", "--bind", "127.0.0.1", "--save", "", "--dir", str(data), "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", "", "--maxclients", "1000",
        ]  # fmt: skip
        if sc.appendfsync:
            cmd += ["--appendonly", "yes", "--appendfsync", sc.appendfsync]
        else:
            cmd += ["--appendonly", "no"]
        if sc.tls:
            self.ca = make_test_certs(self.workdir / "tls")
            self.token = secrets.token_hex(16)
            tls = self.workdir / "tls"
            cmd += [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(tls / "tls.crt"), "--tls-key-file", str(tls / "tls.key"),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no", "--tls-protocols", "TLSv1.3",
                "--requirepass", self.token,
            ]  # fmt: skip
        else:
            cmd += ["--port", str(self.port)]
        self._spawn(cmd)
        self._wait_ready()
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        m = re.search(r"v=(\S+)", out)
        self.version = f"redis {m.group(1) if m else out.strip()}"
        self.persistence = self._redis_config("appendonly", "appendfsync", "save")

    def redis_cli(self, *args: str) -> list[str]:
        cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.scenario.tls:
            cmd += ["--tls", "--cacert", str(self.ca), "--sni", "127.0.0.1", "-a", self.token]
        out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise ServerError(f"redis-cli {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.splitlines()

    def _redis_config(self, *names: str) -> dict[str, Any]:
        got: dict[str, Any] = {}
        for name in names:
            lines = self.redis_cli("CONFIG", "GET", name)
            got[name] = lines[1] if len(lines) > 1 else ""
        return got

    # -- velocity ---------------------------------------------------------------

    def _start_velocity(self) -> None:
        sc = self.scenario
        self.port = free_port()
        data = self.workdir / "data"
        cmd = [
            *engine_cmd(), "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(free_port()), "--log-level", "WARNING",
        ]  # fmt: skip
        if sc.tls:
            self.token = secrets.token_hex(24)
            tok = self.workdir / "token"
            tok.write_text(self.token)
            tok.chmod(0o600)
            cmd += ["--auth-token-file", str(tok)]
            self.ca = data / "tls" / "ca.crt"  # generated by the engine on first start
        else:
            cmd += ["--insecure"]
        if sc.storage:
            cmd += ["--storage", sc.storage]
        if sc.appendfsync:
            cmd += ["--appendfsync", sc.appendfsync]
        env = dict(os.environ)
        env.pop("VDB_TOKEN", None)
        self._spawn(cmd, env)
        self._wait_ready()
        out = subprocess.run([*engine_cmd(), "--version"], capture_output=True, text=True, timeout=60)
        text = (out.stdout.strip() or out.stderr.strip()).splitlines()
        self.version = text[-1] if text else "velocity-engine (unknown version)"
        info = asyncio.run(self._velocity_info())
        storage = info.get("storage", {})
        fsync = info.get("persistence", {}).get("appendfsync") or storage.get("appendfsync", "?")
        server = info.get("server", {})
        self.persistence = {
            # The Python data plane's INFO has no data_plane field.
            "data_plane": server.get("data_plane", "python"),
            "storage": storage.get("engine", "?"),
            "appendfsync": fsync,
            "tls": server.get("tls", "?"),
            "auth": server.get("auth", "?"),
        }

    async def _velocity_info(self) -> dict[str, Any]:
        from velocity import VelocityPool

        pool = VelocityPool(
            f"vdb://127.0.0.1:{self.port}",
            auth=self.token or None,
            ca=self.ca,
            pool_size=1,
            insecure=not self.scenario.tls,
        )
        async with pool:
            info: dict[str, Any] = await pool.info()
        return info
