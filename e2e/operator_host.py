"""The operator as a host process against the cluster, restartable (e2e helpers).

The e2e modules run `python -m velocity_operator.main` against the test's kubeconfig,
watching only the test's namespace, so the suite needs the engine image in the cluster
but not the operator image. `OperatorProcess.kill()` is a SIGKILL of the whole process
group (what a crashed or evicted operator looks like); `start()` starts a fresh one.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE

__all__ = ["REPO", "OperatorProcess", "operator_log", "running_operator"]

REPO = Path(__file__).resolve().parents[1]


def operator_log(ns: Kubectl) -> Path:
    """Where the operator of `ns` logs: outside pytest's basetemp, which a concurrent
    pytest run of the same user may prune while this one still runs."""
    path = Path(tempfile.gettempdir()) / "velocity-e2e" / f"{ns.namespace}-operator.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OperatorProcess:
    """One operator process at a time, its output appended to `log`."""

    def __init__(self, ns: Kubectl, log: Path, *, resync_seconds: int = 5) -> None:
        self.ns = ns
        self.log = log
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the operator and wait for its liveness endpoint. The ports are picked
        free: `--liveness-port 0` would make kopf bind port 80, which a second operator
        on the machine then cannot."""
        assert self.proc is None or self.proc.poll() is not None, "the operator is already running"
        env = {**os.environ, "VELOCITY_OPERATOR_RESYNC_SECONDS": str(self.resync_seconds),
               "VELOCITY_ENGINE_IMAGE": ENGINE_IMAGE}
        liveness = _free_port()
        with self.log.open("ab") as out:
            self.starts += 1
            out.write(f"===== operator start #{self.starts} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "velocity_operator.main", "--kubeconfig", self.ns.kubeconfig,
                 "--namespace", str(self.ns.namespace), "--metrics-port", str(_free_port()),
                 "--liveness-port", str(liveness), "--metrics-host", "127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
        wait_for(lambda: self._alive(liveness), timeout=60, interval=0.25, what="the operator's /healthz")

    def _alive(self, port: int) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def assert_running(self) -> None:
        """Fail at once (with its log) if the operator died, instead of timing out later."""
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator is not running:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no finalizer work, in-flight reconciles cut short."""
        self._signal(signal.SIGKILL, wait=10)

    def stop(self) -> None:
        if not self._signal(signal.SIGTERM, wait=20):
            self._signal(signal.SIGKILL, wait=10)

    def _signal(self, sig: signal.Signals, *, wait: float) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return True
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(wait)
            return True
        except subprocess.TimeoutExpired:
            return False

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _established(ns: Kubectl, crd: str) -> bool:
    conditions = (ns.json("get", "crd", crd).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


@contextmanager
def running_operator(ns: Kubectl, log: Path | None = None) -> Iterator[OperatorProcess]:
    """Install the CRDs, start the operator (log: `log`, default operator_log(ns)); on
    exit delete the namespace's Velocity resources while it still runs (it holds their
    finalizers), then stop it."""
    log = log or operator_log(ns)
    ns.run("apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("velocityclusters.vdb.io", "velocitybackups.vdb.io"):
        # Polled rather than `kubectl wait`: right after creation the CRD has no
        # status.conditions yet, and kubectl wait fails on that instead of waiting.
        wait_for(functools.partial(_established, ns, crd), timeout=60, what=f"CRD {crd} Established")
    operator = OperatorProcess(ns, log)
    operator.start()
    try:
        yield operator
    finally:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()  # a test killed it: the finalizers need a running operator
        ns.run("delete", "velocitybackups,velocityclusters", "--all", "--wait=true", "--timeout=120s",
               check=False, timeout=150)
        operator.stop()
        print(f"--- operator log (tail)\n{operator.tail()}")
