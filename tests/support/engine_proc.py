"""Start real `velocity-engine` processes for tests, and always clean them up.

    with EngineProcess(tmp_path) as eng:          # TLS + generated token
        async with eng.pool() as vdb: ...
    eng.kill()                                      # SIGKILL, for crash tests
    eng.start()                                     # same data dir, new process

Readiness is polled on /readyz (no sleeps); ports are chosen free by the OS
and passed explicitly. Output goes to DATA_DIR/../engine-N.log, which is
printed when a start fails so the reason is visible.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

VENV_BIN = Path(sys.executable).parent
ENGINE = str(VENV_BIN / "velocity-engine")
CTL = str(VENV_BIN / "velocityctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01, what: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)




class EngineProcess:
    def __init__(
        self,
        base: Path,
        *,
        insecure: bool = False,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.insecure = insecure
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.port = port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = base / "engine-0.log"

    # -- lifecycle -------------------------------------------------------------

    def args(self) -> list[str]:
        a = [ENGINE, "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--metrics-port", str(self.metrics_port)]
        if self.insecure:
            a.append("--insecure")
        return a + self.extra_args + self.data_plane_args()

    def data_plane_args(self) -> list[str]:
        """VELOCITY_TEST_DATA_PLANE=python: run this engine on the previous (Python) data plane
        instead of the default native one (`make test-integration-python`), unless the test
        chose a plane itself (a --data-plane flag, or VELOCITY_DATA_PLANE in its env)."""
        plane = os.environ.get("VELOCITY_TEST_DATA_PLANE")
        if plane is None:
            return []
        args, env = self.extra_args, {**os.environ, **self.env}
        if "--data-plane" in args:
            return []
        if env.get("VELOCITY_DATA_PLANE"):
            return []
        return ["--data-plane", plane]

    def start(self, timeout: float = 20.0, wait_ready: bool = True) -> EngineProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / f"engine-{self.starts}.log"
        self.starts += 1
        env = {**os.environ, **self.env}
        env.pop("VDB_TOKEN", None) if "VDB_TOKEN" not in self.env else None
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        if wait_ready:
            try:
                wait_until(self._ready_or_dead, timeout, what=f"engine on port {self.port} to become ready")
            except TimeoutError:
                self.kill()
                raise RuntimeError(f"engine did not become ready:\n{self.log()}") from None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        return self.http_status("/readyz") == 200

    def http_get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def http_status(self, path: str) -> int | None:
        try:
            return self.http_get(path)[0]
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def metrics(self) -> str:
        status, body = self.http_get("/metrics")
        assert status == 200
        return body.decode()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"engine ignored SIGTERM for {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL the whole process group (no chance to flush anything)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> EngineProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()

    # -- clients ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"vdb://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "auth-token"

    @property
    def token(self) -> str:
        return self.env.get("VDB_TOKEN") or self.token_file.read_text().strip()

    @property
    def admin_token_file(self) -> Path:
        """The admin credential (PROMOTE, REPLICA_OF, switchover, snapshots)."""
        return self.data_dir / "admin-token"

    @property
    def admin_token(self) -> str:
        return self.env.get("VDB_ADMIN_TOKEN") or self.admin_token_file.read_text().strip()

    def ctl_env(self) -> dict[str, str]:
        """velocityctl's environment: no VDB_* from the caller; admin commands get the admin token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
        if not self.insecure:
            env["VDB_ADMIN_TOKEN_FILE"] = str(self.admin_token_file)
        return env

    def pool(self, **kw: Any) -> Any:
        from velocity import VelocityPool

        if self.insecure:
            return VelocityPool(node=self.endpoint, insecure=True, **kw)
        return VelocityPool(node=self.endpoint, auth=self.token, ca=self.ca, **kw)

    def admin_pool(self, **kw: Any) -> Any:
        """A pool with the admin token: PROMOTE, REPLICA_OF, switchover and snapshots need it."""
        from velocity import VelocityPool

        if self.insecure:
            return VelocityPool(node=self.endpoint, insecure=True, **kw)
        return VelocityPool(node=self.endpoint, auth=self.admin_token, ca=self.ca, **kw)

    def ctl_args(self, *args: str) -> list[str]:
        """The velocityctl command line for this engine (for tests that run it asynchronously)."""
        base = [CTL, "--endpoint", self.endpoint]
        if self.insecure:
            base.append("--insecure")
        else:
            base += ["--ca", str(self.ca), "--token-file", str(self.token_file)]
        return base + list(args)

    def ctl(self, *args: str, check: bool = False, input: bytes | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess[bytes]:
        """Run velocityctl against this engine."""
        return subprocess.run(self.ctl_args(*args), capture_output=True, check=check, input=input,
                              timeout=timeout, env=self.ctl_env())
