"""Fixtures for the operator against a real kube-apiserver (tier 1 of the Kubernetes harness).

- `kube_api`: etcd + kube-apiserver + kube-controller-manager (tests/kube/plugin.py).
- `crds`: the generated CRDs applied and Established.
- `operator`: `velocity-operator` as a subprocess against that API server, with a short
  resync so drift correction is observable; always terminated.
- `ns`: a fresh namespace per test, deleted afterwards.

There is no scheduler or kubelet in this tier: pods stay Pending. Tests that need ready
pods mark them Ready through the pod status subresource, as a kubelet would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.kube.kube_api import KubeAPI
from tests.kube.plugin import kube_api

if TYPE_CHECKING:  # podsim imports this module
    from .podsim import SimulatedPod

__all__ = ["Kubectl", "OperatorProcess", "crds", "engines", "free_port", "kube_api", "kubectl", "ns", "operator",
           "wait_for"]

REPO = Path(__file__).resolve().parents[2]
RESYNC_SECONDS = 2
T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Kubectl:
    """kubectl against the tier's API server, returning parsed JSON where it makes sense."""

    api: KubeAPI

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.api.bin_dir / "kubectl"), "--kubeconfig", str(self.api.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def apply(self, obj: dict[str, Any] | str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.run("apply", "-f", "-", *extra, stdin=text, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        done = self.run(*args, check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name}: {done.stderr.strip()}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.run(*args).stdout)["items"]
        return items


@pytest.fixture(scope="session")
def kubectl(kube_api: KubeAPI) -> Kubectl:
    return Kubectl(kube_api)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("velocityclusters.vdb.io", "velocitybackups.vdb.io"):
        kubectl.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@dataclass
class OperatorProcess:
    """One `velocity-operator` process; `stop()` and `start()` simulate restarts."""

    api: KubeAPI
    workdir: Path
    metrics_port: int = 0
    liveness_port: int = 0
    popen: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)  # e.g. ["--namespace", NS]
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "operator.log"

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = {**os.environ, "VELOCITY_OPERATOR_RESYNC_SECONDS": str(RESYNC_SECONDS)}
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "velocity_operator.main", "--kubeconfig", str(self.api.kubeconfig),
                 "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                 "--liveness-port", str(self.liveness_port), *self.extra_args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        wait_for("the operator's liveness endpoint", self._alive, timeout=60)

    def _alive(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise AssertionError(f"operator exited with {self.popen.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def operator(kube_api: KubeAPI, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(kube_api, tmp_path_factory.mktemp("operator"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def cluster(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def mark_pods_ready(kubectl: Kubectl, namespace: str, selector: str) -> int:
    """What a kubelet would report: every selected pod Running and Ready."""
    pods = kubectl.items("pods", namespace, selector)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for pod in pods:
        patch = {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ]}}
        kubectl.run("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps(patch))
    return len(pods)


_ = kube_api  # re-exported fixture


@pytest.fixture
def engines() -> Iterator[list[SimulatedPod]]:
    """Engine processes standing in for pods (tests/operator/podsim.py): a test appends
    each one it starts, and every one is stopped at the end, whatever the outcome."""
    started: list[SimulatedPod] = []
    try:
        yield started
    finally:
        for pod in started:
            pod.stop()
