"""`kubectl velocity connect NAME [-- VELOCITYCTL ARGS]`: velocityctl against a cluster.

1. The credentials come from the cluster's Secrets: `NAME-ca` (key `ca.crt`), `NAME-auth`
   (key `token`, data commands) and `NAME-admin` (key `token`, admin commands: promote,
   switchover, replicaof, snapshot), written to a private temporary directory (0700,
   files 0600) that is removed when velocityctl exits. A missing NAME-admin only limits
   velocityctl to data commands.
2. `kubectl port-forward svc/NAME :2005` (or `pod/POD` with --pod) on a free local port,
   unless --address names an endpoint that already reaches the engine (a port-forward
   of your own, or from inside the cluster).
3. velocityctl runs with VDB_ENDPOINT, VDB_CA, VDB_TOKEN_FILE and VDB_ADMIN_TOKEN_FILE
   set, and `--server-name` set to the Service's (or pod's) DNS name, which the server
   certificate covers; a plaintext cluster (spec.tls.enabled false) gets `--insecure`.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import names
from ..api.crd import CLUSTER
from ..kube import Kube
from .status import ClusterNotFound

__all__ = ["PORT_FORWARD_TIMEOUT_S", "ConnectError", "Credentials", "fetch_credentials", "forwarded_port",
           "port_forward", "velocityctl_command", "write_credentials"]

PORT_FORWARD_TIMEOUT_S = 30.0
_FORWARDING = re.compile(r"Forwarding from (?:127\.0\.0\.1|\[::1\]):(\d+) -> (\d+)")


class ConnectError(RuntimeError):
    """The connection could not be set up (credentials missing, port-forward failed)."""


@dataclass(frozen=True)
class Credentials:
    tls: bool
    ca_pem: bytes | None
    token: bytes | None
    admin_token: bytes | None  # None: NAME-admin does not exist (yet); admin commands will be refused


def _secret_value(secret: dict[str, Any] | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if isinstance(value, str) else None


async def fetch_credentials(kube: Kube, cluster: str, namespace: str) -> Credentials:
    body = await kube.get(CLUSTER.api_version, CLUSTER.kind, namespace, cluster)
    if body is None:
        raise ClusterNotFound(cluster, namespace)
    tls = bool(((body.get("spec") or {}).get("tls") or {}).get("enabled", True))
    if not tls:
        return Credentials(False, None, None, None)
    ca = _secret_value(await kube.get("v1", "Secret", namespace, names.ca_secret(cluster)), "ca.crt")
    if ca is None:  # bring-your-own or cert-manager certificate: the CA travels with it
        server_secret = ((body.get("spec") or {}).get("tls") or {}).get("secretName") or names.tls_secret(cluster)
        ca = _secret_value(await kube.get("v1", "Secret", namespace, server_secret), "ca.crt")
    token = _secret_value(await kube.get("v1", "Secret", namespace, names.auth_secret(cluster)), "token")
    admin = _secret_value(await kube.get("v1", "Secret", namespace, names.admin_secret(cluster)), "token")
    missing = [what for what, value in ((f"Secret {names.ca_secret(cluster)} (ca.crt)", ca),
                                        (f"Secret {names.auth_secret(cluster)} (token)", token)) if value is None]
    if missing:
        raise ConnectError(f"cannot connect to {cluster}: {' and '.join(missing)} not found")
    return Credentials(True, ca, token, admin)


@contextmanager
def write_credentials(creds: Credentials) -> Iterator[dict[str, Path]]:
    """The credentials as files in a private temporary directory: {"ca": ..., "token": ..., "admin": ...}."""
    with tempfile.TemporaryDirectory(prefix="kubectl-velocity-") as workdir:
        os.chmod(workdir, 0o700)
        files: dict[str, Path] = {}
        for key, value in (("ca", creds.ca_pem), ("token", creds.token), ("admin", creds.admin_token)):
            if value is not None:
                path = Path(workdir) / key
                path.touch(mode=0o600)
                path.write_bytes(value)
                files[key] = path
        yield files


def forwarded_port(line: str) -> int | None:
    """The local port of a `kubectl port-forward` "Forwarding from 127.0.0.1:PORT -> 2005" line."""
    m = _FORWARDING.search(line)
    return int(m.group(1)) if m else None


def kubectl_base(kubectl: str, kubeconfig: str | None, context: str | None) -> list[str]:
    return [kubectl, *(["--kubeconfig", kubeconfig] if kubeconfig else []),
            *(["--context", context] if context else [])]


@contextmanager
def port_forward(base: list[str], namespace: str, target: str,
                 timeout: float = PORT_FORWARD_TIMEOUT_S) -> Iterator[int]:
    """`kubectl port-forward TARGET :2005` until the block ends; yields the local port.
    kubectl gives up after `timeout` seconds without a running pod behind TARGET."""
    proc = subprocess.Popen([*base, "-n", namespace, "port-forward", f"--pod-running-timeout={timeout:g}s", target,
                             f":{names.CLIENT_PORT}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + timeout + 5
        port = None
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # blocks until kubectl prints or exits
            if not line:
                raise ConnectError(f"kubectl port-forward {target} failed: {proc.stderr.read().strip()}")
            port = forwarded_port(line)
        if port is None:
            raise ConnectError(f"kubectl port-forward {target}: no forwarding within {timeout:.0f}s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def velocityctl_binary() -> str:
    """velocityctl from the same installation as this plugin, else from PATH."""
    beside = Path(sys.executable).parent / "velocityctl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("velocityctl")
    if found is None:
        raise ConnectError("velocityctl not found (it is installed with the velocity package)")
    return found


def velocityctl_command(binary: str, endpoint: str, server_name: str | None, files: dict[str, Path],
                        args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """velocityctl's argv and environment (pure): credentials by file, never on the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
    env["VDB_ENDPOINT"] = endpoint
    argv = [binary]
    if "ca" in files:
        env["VDB_CA"] = str(files["ca"])
        env["VDB_TOKEN_FILE"] = str(files["token"])
        if "admin" in files:
            env["VDB_ADMIN_TOKEN_FILE"] = str(files["admin"])
        if server_name:
            argv += ["--server-name", server_name]
    else:
        argv.append("--insecure")
    return [*argv, *args], env
