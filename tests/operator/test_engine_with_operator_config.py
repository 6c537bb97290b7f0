"""A real velocity-engine process started the way the operator's pods start it.

The ConfigMap and Secrets come from the operator's builders; their files are laid out
like the pod's mounts (paths rewritten to a temporary directory, as the kubelet's
mounts would place them), the engine runs with the container's arguments, and
velocityctl talks to it over real TLS, trusting only NAME-ca and using NAME-auth's token.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from velocity_operator import tlsutil
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders import config, secrets, statefulset
from velocity_operator.builders.meta import Owner

from .conftest import free_port, wait_for

BIN = Path(sys.executable).parent


@dataclass
class Pod:
    root: Path
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]

    def ctl(self, *args: str, token_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "velocityctl"), "--endpoint", f"vdb://localhost:{self.port}",
             "--ca", str(self.root / "client" / "ca.crt"),
             "--token-file", str(token_file or self.root / "etc/velocity/auth/token"), *args],
            capture_output=True, text=True, timeout=30, check=False)


def _write_secret(secret: dict[str, object], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = secret["data"]
    assert isinstance(data, dict)
    for key, value in data.items():
        (directory / key).write_bytes(base64.b64decode(value))
        (directory / key).chmod(0o600)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    owner = Owner(name="alpha", namespace="prod", uid="uid")
    spec = VelocityClusterSpec.model_validate({"config": {"maxConnections": 77, "logLevel": "INFO"}})
    now = dt.datetime.now(dt.UTC)
    ca = tlsutil.issue_ca("velocity-prod-alpha-ca", now=now)
    server = tlsutil.issue_server(ca, secrets.server_dns_names("alpha", "prod"), now=now)

    root = tmp_path / "pod"
    port, metrics_port = free_port(), free_port()
    toml = config.config_map(owner, spec)["data"][config.CONFIG_KEY]
    # The kubelet's mounts, relocated under `root`; listen on loopback with free ports.
    for mount in (config.CONFIG_DIR, config.TLS_DIR, config.AUTH_DIR, config.DATA_DIR):
        toml = toml.replace(f'"{mount}', f'"{root}{mount}')
    toml = toml.replace('host = "0.0.0.0"', 'host = "127.0.0.1"').replace(
        "metrics_host = \"0.0.0.0\"", "metrics_host = \"127.0.0.1\"")
    toml = toml.replace("port = 2005", f"port = {port}")
    toml = toml.replace("metrics_port = 9105", f"metrics_port = {metrics_port}")
    (root / config.CONFIG_DIR.lstrip("/")).mkdir(parents=True)
    (root / config.CONFIG_DIR.lstrip("/") / config.CONFIG_KEY).write_text(toml)
    _write_secret(secrets.tls_secret(owner, server, ca.cert_pem), root / config.TLS_DIR.lstrip("/"))
    _write_secret(secrets.auth_secret(owner, secrets.new_token()), root / config.AUTH_DIR.lstrip("/"))
    _write_secret(secrets.ca_secret(owner, ca), root / "client")
    (root / "data").mkdir()

    sts = statefulset.statefulset(owner, spec, config_hash="x")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    args = [a.replace(config.DATA_DIR, f"{root}{config.DATA_DIR}") if a == config.DATA_DIR
            else a.replace(config.CONFIG_DIR, f"{root}{config.CONFIG_DIR}") for a in container["args"]]
    log = (tmp_path / "engine.log").open("wb")
    process = subprocess.Popen([str(BIN / container["command"][0]), *args], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    pod = Pod(root, port, metrics_port, process)
    try:
        wait_for("/readyz", lambda: _ready(pod, tmp_path / "engine.log"), timeout=30)
        yield pod
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _ready(pod: Pod, log: Path) -> bool:
    if pod.process.poll() is not None:
        raise AssertionError(f"engine exited {pod.process.returncode}:\n{log.read_text()[-3000:]}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pod.metrics_port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_engine_serves_tls_with_the_operator_material(pod: Pod) -> None:
    done = pod.ctl("set", "k", "v")
    assert done.returncode == 0, done.stderr
    done = pod.ctl("get", "k")
    assert done.returncode == 0 and done.stdout.strip() == "v", done.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{pod.metrics_port}/healthz", timeout=2) as r:
        assert r.status == 200


def test_wrong_token_is_refused(pod: Pod, tmp_path: Path) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text(secrets.new_token())
    done = pod.ctl("get", "k", token_file=bad)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
