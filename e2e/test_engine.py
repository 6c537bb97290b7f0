"""The engine image on a real cluster: probes, a PVC, data across pod deletion,
velocityctl from the host and the SDK from another pod through a Service (TLS + token),
/metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import Kubectl, wait_for
from .manifests import APP, METRICS_PORT, V_PORT, engine_objects, sdk_client_pod

POD = f"{APP}-0"
READY_TIMEOUT_S = 240


def velocityctl_path() -> str:
    found = (os.environ.get("VELOCITYCTL") or shutil.which("velocityctl")
             or str(Path(sys.executable).with_name("velocityctl")))
    if not os.access(found, os.X_OK):
        pytest.fail(f"velocityctl not found ({found}); install the project (make install)",
                    pytrace=False)
    return found


@pytest.fixture(scope="module")
def engine(namespace: Kubectl) -> Iterator[Kubectl]:
    namespace.apply(*engine_objects(namespace.namespace or ""))
    wait_for(lambda: namespace.pod_ready(POD), timeout=READY_TIMEOUT_S,
             what=f"pod {POD} to become Ready through its probes", interval=2)
    yield namespace


@pytest.fixture(scope="module")
def credentials(engine: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The CA and token the engine generated in its data directory."""
    directory = tmp_path_factory.mktemp("engine-credentials")
    ca, token = directory / "ca.crt", directory / "auth-token"
    ca.write_text(engine.exec(POD, "cat", "/data/tls/ca.crt"))
    token.write_text(engine.exec(POD, "cat", "/data/auth-token"))
    token.chmod(0o600)
    return ca, token


def velocityctl(port: int, credentials: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess[str]:
    ca, token = credentials
    return subprocess.run(
        [velocityctl_path(), "--endpoint", f"vdb://127.0.0.1:{port}", "--ca", str(ca),
         "--token-file", str(token), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_pod_ready_through_probes(engine: Kubectl) -> None:
    pod = engine.json("get", "pod", POD)
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True
    assert status["restartCount"] == 0, "liveness probe restarted the engine"


def test_claim_bound_by_default_storage_class(engine: Kubectl) -> None:
    claim = engine.json("get", "pvc", f"data-{POD}")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"], "default StorageClass was not applied"


def test_metrics_reachable(engine: Kubectl) -> None:
    with engine.port_forward(f"service/{APP}-client", METRICS_PORT) as port:
        body = wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read(),
            timeout=30, what="/metrics")
    assert b"# TYPE" in body


def test_data_survives_pod_deletion(engine: Kubectl, credentials: tuple[Path, Path]) -> None:
    with engine.port_forward(f"service/{APP}-client", V_PORT) as port:
        done = velocityctl(port, credentials, "set", "e2e-key", "survives")
        assert done.returncode == 0, done.stderr
        done = velocityctl(port, credentials, "get", "e2e-key")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "survives"
        missing = velocityctl(port, credentials, "get", "no-such-key")
        assert missing.returncode == 1, missing

    old_uid = engine.json("get", "pod", POD)["metadata"]["uid"]
    engine.run("delete", "pod", POD, "--wait=true", "--timeout=120s", timeout=150)

    def replaced_and_ready() -> bool:
        pod = engine.pod_ready(POD)
        return bool(pod and pod["metadata"]["uid"] != old_uid)

    wait_for(replaced_and_ready, timeout=READY_TIMEOUT_S, what=f"a new {POD} to become Ready",
             interval=2)
    with engine.port_forward(f"service/{APP}-client", V_PORT) as port:
        done = velocityctl(port, credentials, "get", "e2e-key")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "survives"


def test_sdk_from_another_pod(engine: Kubectl, credentials: tuple[Path, Path]) -> None:
    """Another pod reaches the engine by its Service's DNS name, verifying TLS and using the token."""
    ca, token = credentials
    ns = engine.namespace or ""
    engine.run("create", "secret", "generic", "engine-credentials",
               f"--from-file=ca.crt={ca}", f"--from-file=auth-token={token}")
    engine.apply(sdk_client_pod(ns, secret="engine-credentials", service=f"{APP}-client"))

    def finished() -> str | None:
        phase = engine.json("get", "pod", "sdk-client")["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, timeout=READY_TIMEOUT_S, what="the SDK client pod to finish", interval=2)
    logs = engine.run("logs", "sdk-client")
    assert phase == "Succeeded", logs
    assert "GOT in-cluster" in logs
