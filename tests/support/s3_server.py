"""A real S3-compatible server (versitygw, built by hack/s3/build.sh) as a test process.

    with S3Server(tmp_path) as s3:
        client = s3.client()            # path-style, the root key pair
        client.create_bucket("b")

The binary is built from the Go module proxy on first use (cached, never rebuilt). The
port is chosen free by the OS; readiness is polled on the server's health path; the
process is always stopped, and its log printed when it fails to start.

`iam=True` also runs versitygw's standalone IAM service (users, roles, OIDC providers and
STS's AssumeRoleWithWebIdentity, at `iam_endpoint`), which the gateway asks over a unix
socket to authenticate temporary credentials (ASIA... keys with a session token) and to
decide what roles may do; the root key pair works as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from velocity_operator import tlsutil
from velocity_operator.s3.client import Credentials, S3Client

from tests.support.engine_proc import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "s3" / "build.sh"
HEALTH = "/health"


def server_binary() -> Path:
    """The versitygw binary, building it when the cache lacks it (idempotent)."""
    done = subprocess.run(["bash", str(BUILD)], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


class S3Server:
    def __init__(self, base: Path, *, region: str = "us-east-1", virtual_domain: str | None = None,
                 tls: bool = False, iam: bool = False) -> None:
        """`tls` serves https with a certificate for localhost/127.0.0.1 from a fresh CA
        whose certificate is at `ca_file`."""
        self.base = base
        self.tls = tls
        self.ca_file = base / "s3-ca.crt"
        self.data_dir = base / "s3-data"
        self.region = region
        self.virtual_domain = virtual_domain
        self.port = free_port()
        self.credentials = Credentials("VELOCITYTEST" + secrets.token_hex(4).upper(), secrets.token_urlsafe(30))
        self.log_path = base / "s3-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.iam = iam
        self.iam_port = free_port() if iam else 0
        self.iam_log_path = base / "s3-iam.log"
        self.iam_proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None  # unix socket paths must stay short: not under base

    @property
    def iam_endpoint(self) -> str:
        """The IAM and STS API (plain http on loopback)."""
        return f"http://127.0.0.1:{self.iam_port}"

    def iam_client(self) -> Any:
        """A boto3 IAM client for the IAM service, as the root user."""
        import boto3

        return boto3.client("iam", endpoint_url=self.iam_endpoint, region_name=self.region,
                            aws_access_key_id=self.credentials.access_key_id,
                            aws_secret_access_key=self.credentials.secret_access_key)

    def sts_client(self) -> Any:
        """A boto3 STS client for the IAM service, unsigned (AssumeRoleWithWebIdentity
        authenticates with its token, not with keys)."""
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        return boto3.client("sts", endpoint_url=self.iam_endpoint, region_name=self.region,
                            config=Config(signature_version=UNSIGNED))

    @property
    def endpoint(self) -> str:
        return f"https://localhost:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

    def client(self, credentials: Credentials | None = None, **kwargs: object) -> S3Client:
        if self.tls:
            kwargs.setdefault("ca_file", str(self.ca_file))
        return S3Client(self.endpoint, credentials=credentials or self.credentials, region=self.region,
                        **kwargs)  # type: ignore[arg-type]

    def _tls_args(self) -> list[str]:
        now = dt.datetime.now(dt.UTC)
        ca = tlsutil.issue_ca("velocity-test-s3-ca", now=now)
        server = tlsutil.issue_server(ca, ["localhost"], now=now)
        self.ca_file.write_bytes(ca.cert_pem)
        cert, key = self.base / "s3-server.crt", self.base / "s3-server.key"
        cert.write_bytes(server.cert_pem)
        key.write_bytes(server.key_pem)
        key.chmod(0o600)
        return ["--cert", str(cert), "--key", str(key)]

    def _common_args(self, port: int) -> list[str]:
        return [str(server_binary()), "--port", f"127.0.0.1:{port}", "--access",
                self.credentials.access_key_id, "--secret", self.credentials.secret_access_key,
                "--region", self.region, "--health", HEALTH, "--quiet"]

    def _start_iam(self) -> str:
        """Start the IAM service; the path of the private socket the gateway uses."""
        self._socket_dir = Path(tempfile.mkdtemp(prefix="vgw-iam-"))
        socket = self._socket_dir / "iam.sock"
        (self.base / "s3-iam").mkdir(parents=True, exist_ok=True)
        args = [*self._common_args(self.iam_port), "iam", "--dir", str(self.base / "s3-iam"),
                "--private-ports", str(socket)]
        with self.iam_log_path.open("ab") as log:
            self.iam_proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            assert self.iam_proc is not None
            if self.iam_proc.poll() is not None:
                raise RuntimeError(f"the IAM service exited {self.iam_proc.returncode}; log:\n"
                                   f"{self.iam_log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.iam_endpoint}{HEALTH}", timeout=1) as response:
                    return bool(response.status == 200) and socket.exists()
            except (urllib.error.URLError, OSError):
                return False

        wait_until(healthy, timeout=30, interval=0.05, what=f"versitygw IAM on port {self.iam_port}")
        return str(socket)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = self._common_args(self.port)
        if self.iam:
            try:
                args += ["--iam-standalone-endpoint", self._start_iam()]
            except BaseException:
                self.stop()
                raise
        if self.virtual_domain:
            args += ["--virtual-domain", self.virtual_domain]
        if self.tls:
            args += self._tls_args()
        args += ["posix", str(self.data_dir)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._healthy, timeout=30, interval=0.05, what=f"versitygw on port {self.port}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the S3 server did not start; log:\n{self.log_path.read_text()[-3000:]}") from None

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited {self.proc.returncode}; log:\n"
                               f"{self.log_path.read_text()[-3000:]}")
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else None
        try:
            with urllib.request.urlopen(f"{self.endpoint}{HEALTH}", timeout=1, context=context) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        for proc in (self.proc, self.iam_proc):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self.proc = self.iam_proc = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
