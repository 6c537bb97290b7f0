"""The operator as a host process against the cluster, restartable (e2e helpers).

The e2e modules run `python -m velocity_operator.main` against the test's kubeconfig,
watching only the test's namespace, so the suite needs the engine image in the cluster
but not the operator image. `OperatorProcess.kill()` is a SIGKILL of the whole process
group (what a crashed or evicted operator looks like); `start()` starts a fresh one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .kube import Kubectl
from .manifests import ENGINE_IMAGE

__all__ = ["REPO", "OperatorProcess", "running_operator"]

REPO = Path(__file__).resolve().parents[1]


class OperatorProcess:
    """One operator process at a time, its output appended to `log`."""

    def __init__(self, ns: Kubectl, log: Path, *, resync_seconds: int = 5) -> None:
        self.ns = ns
        self.log = log
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the operator is already running"
        env = {**os.environ, "VELOCITY_OPERATOR_RESYNC_SECONDS": str(self.resync_seconds),
               "VELOCITY_ENGINE_IMAGE": ENGINE_IMAGE}
        with self.log.open("ab") as out:
            self.starts += 1
            out.write(f"===== operator start #{self.starts} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "velocity_operator.main", "--kubeconfig", self.ns.kubeconfig,
                 "--namespace", str(self.ns.namespace), "--metrics-port", "0", "--liveness-port", "0",
                 "--metrics-host", "127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)

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


@contextmanager
def running_operator(ns: Kubectl, log: Path) -> Iterator[OperatorProcess]:
    """Install the CRDs, start the operator; on exit delete the namespace's Velocity
    resources while it still runs (it holds their finalizers), then stop it."""
    ns.run("apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("velocityclusters.vdb.io", "velocitybackups.vdb.io"):
        ns.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
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
