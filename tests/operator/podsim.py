"""Run velocity-engine the way the operator's pods run it, without Kubernetes.

The ConfigMap, Secrets and container command come from the operator's builders; their
files are laid out like the pod's mounts under a root directory (paths rewritten, as
the kubelet's mounts would place them), and the engine listens on free loopback ports.
Used to check that what the operator generates actually works with the real engine.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from velocity_operator import tlsutil
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders import backup_job, config, secrets, statefulset
from velocity_operator.builders.meta import Owner

from tests.kube.kube_api import KubeAPI

from .conftest import Kubectl, free_port, wait_for

__all__ = ["BIN", "ClusterMaterial", "SimulatedPod", "engine_kubeconfig", "operator_material"]

BIN = Path(sys.executable).parent


@dataclass
class ClusterMaterial:
    """What the operator creates once per cluster: CA, server certificate, the client,
    admin and replication tokens."""

    owner: Owner = field(default_factory=lambda: Owner(name="alpha", namespace="prod", uid="uid"))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.ca = tlsutil.issue_ca("velocity-prod-alpha-ca", now=now)
        self.server = tlsutil.issue_server(self.ca, secrets.server_dns_names(self.owner.name, self.owner.namespace),
                                           now=now)
        self.token = secrets.new_token()
        self.admin_token = secrets.new_token()
        self.replication_token = secrets.new_token()


def _write_secret(secret: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in secret["data"].items():
        (directory / key).write_bytes(base64.b64decode(value))
        (directory / key).chmod(0o600)


def _without_lease(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--lease-name", "--lease-namespace"):
            skip = True
        else:
            out.append(arg)
    return out


@dataclass
class SimulatedPod:
    root: Path
    material: ClusterMaterial
    spec: VelocityClusterSpec
    restore: statefulset.RestoreSource | None = None
    restore_root: Path | None = None  # where the restore claim is "mounted"
    # The Lease agent's credentials (the pod's ServiceAccount token, as a kubeconfig). None:
    # no API server, so the Lease flags are dropped and the engine runs as a lone primary.
    lease_kubeconfig: Path | None = None
    pod_name: str = "alpha-0"
    port: int = 0
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def _relocate(self, text: str) -> str:
        for mount in (config.CONFIG_DIR, config.TLS_DIR, config.AUTH_DIR, config.ADMIN_DIR, config.REPLICATION_DIR,
                      backup_job.CA_DIR, config.DATA_DIR):
            text = text.replace(mount, f"{self.root}{mount}")
        if self.restore_root is not None:
            text = text.replace(statefulset.RESTORE_DIR, str(self.restore_root))
        return text

    def _lay_out(self) -> None:
        owner = self.material.owner
        toml = config.config_map(owner, self.spec)["data"][config.CONFIG_KEY]
        toml = self._relocate(toml).replace('"0.0.0.0"', '"127.0.0.1"')
        toml = toml.replace("port = 2005", f"port = {self.port}")
        toml = toml.replace("metrics_port = 9105", f"metrics_port = {self.metrics_port}")
        (self.root / config.CONFIG_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (self.root / config.CONFIG_DIR.lstrip("/") / config.CONFIG_KEY).write_text(toml)
        _write_secret(secrets.tls_secret(owner, self.material.server, self.material.ca.cert_pem),
                      self.root / config.TLS_DIR.lstrip("/"))
        _write_secret(secrets.auth_secret(owner, self.material.token), self.root / config.AUTH_DIR.lstrip("/"))
        _write_secret(secrets.admin_secret(owner, self.material.admin_token), self.root / config.ADMIN_DIR.lstrip("/"))
        _write_secret(secrets.replication_secret(owner, self.material.replication_token),
                      self.root / config.REPLICATION_DIR.lstrip("/"))
        _write_secret(secrets.ca_secret(owner, self.material.ca), self.root / "client")
        _write_secret(secrets.ca_secret(owner, self.material.ca), self.root / backup_job.CA_DIR.lstrip("/"))
        (self.root / config.DATA_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def _run_init_containers(self, pod_spec: dict[str, Any]) -> None:
        """What the kubelet does before the engine starts: the node-id init container
        (the S3 download one is exercised by its own test)."""
        for init in pod_spec.get("initContainers") or []:
            if init["name"] != statefulset.NODE_ID_CONTAINER:
                continue
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VELOCITY_POD_NAME": self.pod_name}
            done = subprocess.run([self._relocate(part) for part in init["command"]], env=env, capture_output=True,
                                  text=True, timeout=30, check=False)
            assert done.returncode == 0, f"init container {init['name']} failed: {done.stderr}"

    def start(self) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self._lay_out()
        sts = statefulset.statefulset(self.material.owner, self.spec, config_hash="x", restore=self.restore)
        self._run_init_containers(sts["spec"]["template"]["spec"])
        container = sts["spec"]["template"]["spec"]["containers"][0]
        command = [self._relocate(part) for part in container["command"]]
        if command[0] == "velocity-engine":
            command[0] = str(BIN / "velocity-engine")
        # What the kubelet does: expand $(VAR) from the container's env (the pod name).
        args = [self._relocate(a).replace("$(VELOCITY_POD_NAME)", self.pod_name) for a in container["args"]]
        if self.lease_kubeconfig is None:
            args = _without_lease(args)
        else:
            args += ["--lease-kubeconfig", str(self.lease_kubeconfig)]
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = self._relocate(item["value"])
        log = (self.root.parent / f"{self.root.name}.log").open("ab")
        self.process = subprocess.Popen([*command, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        log.close()
        wait_for("/readyz", self._ready, timeout=30)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.root.parent / f"{self.root.name}.log").read_text(errors="replace")
            raise AssertionError(f"engine exited {self.process.returncode}:\n{log[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def client_env(self) -> dict[str, str]:
        """What an application gets: endpoint, CA and the client token file (NAME-auth)."""
        return {"VDB_ENDPOINT": f"vdb://localhost:{self.port}", "VDB_CA": str(self.root / "client" / "ca.crt"),
                "VDB_TOKEN_FILE": str(self.root / config.AUTH_DIR.lstrip("/") / "token")}

    @property
    def node_id(self) -> str:
        return (self.root / config.DATA_DIR.lstrip("/") / "node-id").read_text().strip()

    def backup_env(self) -> dict[str, str]:
        """What the backup Job's container gets, from the operator's own Job builder (its
        paths rewritten like the pod's mounts): the CA and the admin token (NAME-admin)."""
        owner = self.material.owner
        job = backup_job.backup_job(owner, cluster=owner.name, backup="b", image="i", tls=True,
                                    location=backup_job.PvcLocation(f"{owner.name}-backups", "b.vsnap"))
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: self._relocate(e["value"]) for e in container["env"] if "value" in e}
        env["VDB_ENDPOINT"] = f"vdb://localhost:{self.port}"
        return env

    def ctl(self, *args: str, token_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.client_env()}
        if token_file is not None:
            env["VDB_TOKEN_FILE"] = str(token_file)
        return subprocess.run([str(BIN / "velocityctl"), *args], capture_output=True, text=True, timeout=60,
                              check=False, env=env)


def engine_kubeconfig(kubectl: Kubectl, kube_api: KubeAPI, ns: str, service_account: str, path: Path) -> Path:
    """What a pod of the cluster mounts: a kubeconfig with a token of `service_account`
    (the operator's NAME-engine, so an engine runs with exactly its RBAC)."""
    token = kubectl.run("create", "token", service_account, "-n", ns, "--duration=1h").stdout.strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": kube_api.server,
                                               "certificate-authority": str(kube_api.ca_file)}}],
        "users": [{"name": "engine", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "engine", "namespace": ns}}],
        "current-context": "t",
    }))
    return path


def _secret_bytes(kubectl: Kubectl, ns: str, name: str, key: str) -> bytes:
    secret = wait_for(f"Secret {name}", lambda: kubectl.get("secret", name, ns))
    return base64.b64decode(secret["data"][key])


def operator_material(kubectl: Kubectl, ns: str, owner: Owner) -> ClusterMaterial:
    """The pods' TLS material and tokens as the operator issued them into the cluster's
    Secrets (not podsim's own), so that the operator and the engines agree on them."""
    name = owner.name
    material = ClusterMaterial(owner)
    material.ca = tlsutil.IssuedCert(_secret_bytes(kubectl, ns, f"{name}-ca", "ca.crt"),
                                     _secret_bytes(kubectl, ns, f"{name}-ca-key", "tls.key"))
    material.server = tlsutil.IssuedCert(_secret_bytes(kubectl, ns, f"{name}-tls", "tls.crt"),
                                         _secret_bytes(kubectl, ns, f"{name}-tls", "tls.key"))
    material.token = _secret_bytes(kubectl, ns, f"{name}-auth", "token").decode()
    material.admin_token = _secret_bytes(kubectl, ns, f"{name}-admin", "token").decode()
    material.replication_token = _secret_bytes(kubectl, ns, f"{name}-replication", "token").decode()
    return material
