"""Tier 1 of the Kubernetes harness: a real API server as host processes.

`ApiServerTier.start(workdir)` runs etcd, kube-apiserver (RBAC on, client-certificate
users, service-account tokens) and kube-controller-manager (so that ownerReferences are
garbage-collected, namespaces are finalised and service accounts exist) on free
loopback ports, waits until each answers its health check, and exposes a `KubeAPI`
for cluster-admin. `stop()` terminates every process it started; it is safe to call
more than once and after a failed start.

Nothing here schedules or runs pods: there is no scheduler, kubelet or network. Tier 2
(`make cluster-up`, hack/cluster/up.sh) is the full single-node cluster.

Every child runs in its own process group and gets SIGKILL from the kernel if the
Python process that started it dies (PR_SET_PDEATHSIG), so even a killed test run
leaves no etcd or API server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .binaries import find_bin_dir
from .errors import KubeTierError
from .kube_api import KubeAPI
from .kubeconfig import write_kubeconfig
from .pki import CertificateAuthority, write_service_account_keys

__all__ = ["ApiServerTier"]

SERVICE_CIDR = "10.0.0.0/24"
START_TIMEOUT_S = 90.0
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: new process group, SIGKILL when the parent dies."""
    os.setpgid(0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@dataclass
class ApiServerTier:
    """etcd + kube-apiserver + kube-controller-manager under one work directory.

    The work directory (owned by the caller) holds the PKI, etcd's data, kubeconfigs
    and one log per component (`<name>.log`).
    """

    workdir: Path
    bin_dir: Path
    _api: KubeAPI | None = None
    _processes: list[_Process] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, bin_dir: Path | None = None) -> ApiServerTier:
        """Start the tier; on any failure stop what was started and raise KubeTierError."""
        tier = cls(workdir=workdir, bin_dir=bin_dir or find_bin_dir())
        try:
            tier._start()
        except BaseException:
            tier.stop()
            raise
        return tier

    @property
    def api(self) -> KubeAPI:
        """How to reach the running API server; KubeTierError before a successful start."""
        if self._api is None:
            raise KubeTierError("the API server tier is not running")
        return self._api

    def logs(self) -> dict[str, Path]:
        """Log file of each component, for failure messages."""
        return {name: self.workdir / f"{name}.log" for name in ("etcd", "kube-apiserver", "kube-controller-manager")}

    def _spawn(self, name: str, args: list[str]) -> _Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        process = _Process(name, popen, log)
        self._processes.append(process)
        return process

    def _wait_healthy(self, process: _Process, url: str, ctx: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = process.popen.poll()
            if code is not None:
                raise KubeTierError(
                    f"{process.name} exited with code {code} during start-up; "
                    f"log {process.log}:\n{process.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise KubeTierError(
            f"{process.name} not healthy at {url} after {START_TIMEOUT_S:.0f}s ({last}); "
            f"log {process.log}:\n{process.log_tail()}"
        )

    def _start(self) -> None:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(pki_dir)
        serving = ca.issue(
            "apiserver", common_name="kube-apiserver", server=True,
            dns_names=("localhost", "kubernetes", "kubernetes.default",
                       "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        admin = ca.issue("admin", common_name="velocity-admin", organizations=("system:masters",), client=True)
        kcm_cert = ca.issue("controller-manager", common_name="system:kube-controller-manager", client=True)
        sa = write_service_account_keys(pki_dir)

        etcd_port, etcd_peer, api_port, kcm_port = (free_port() for _ in range(4))
        etcd = self._spawn("etcd", [
            "--name=velocity-test",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=velocity-test=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",  # throw-away test data: speed over durability
            "--quota-backend-bytes=2147483648",
        ])
        self._wait_healthy(etcd, f"http://127.0.0.1:{etcd_port}/health", None)

        server = f"https://127.0.0.1:{api_port}"
        apiserver = self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert_path}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--allow-privileged=true",
            # No node routes to 127.0.0.1 as an endpoint of the kubernetes Service.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ])
        admin_ctx = ssl.create_default_context(cafile=str(ca.cert_path))
        admin_ctx.load_cert_chain(str(admin.cert), str(admin.key))
        self._wait_healthy(apiserver, f"{server}/readyz", admin_ctx)

        kubeconfig = write_kubeconfig(
            self.workdir / "admin.kubeconfig", server=server, ca=ca.cert_path, client=admin, user="velocity-admin",
        )
        kcm_kubeconfig = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig", server=server, ca=ca.cert_path,
            client=kcm_cert, user="system:kube-controller-manager",
        )
        kcm = self._spawn("kube-controller-manager", [
            f"--kubeconfig={kcm_kubeconfig}",
            f"--authentication-kubeconfig={kcm_kubeconfig}",
            f"--authorization-kubeconfig={kcm_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa.key}",
            f"--root-ca-file={ca.cert_path}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ])
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # kcm's self-signed serving cert; /healthz is public
        self._wait_healthy(kcm, f"https://127.0.0.1:{kcm_port}/healthz", insecure)

        self._api = KubeAPI(
            kubeconfig=kubeconfig, server=server, ca_file=ca.cert_path,
            cert_file=admin.cert, key_file=admin.key, bin_dir=self.bin_dir,
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate every process (newest first): SIGTERM, then SIGKILL after `timeout`."""
        self._api = None
        while self._processes:
            process = self._processes.pop()
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGTERM)
                try:
                    process.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.popen.pid, signal.SIGKILL)
                    process.popen.wait()
