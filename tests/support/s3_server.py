"""A real S3-compatible server (versitygw, built by hack/s3/build.sh) as a test process.

    with S3Server(tmp_path) as s3:
        client = s3.client()            # path-style, the root key pair
        client.create_bucket("b")

The binary is built from the Go module proxy on first use (cached, never rebuilt). The
port is chosen free by the OS; readiness is polled on the server's health path; the
process is always stopped, and its log printed when it fails to start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from velocity_operator import tlsutil
from velocity_operator.s3 import Credentials, S3Client

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
                 tls: bool = False) -> None:
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

    @property
    def endpoint(self) -> str:
        return f"https://localhost:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

    def client(self, credentials: Credentials | None = None, **kwargs: object) -> S3Client:
        if self.tls:
            kwargs.setdefault("ca_file", str(self.ca_file))
        return S3Client(self.endpoint, credentials or self.credentials, region=self.region, **kwargs)  # type: ignore[arg-type]

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

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(server_binary()), "--port", f"127.0.0.1:{self.port}", "--access",
                self.credentials.access_key_id, "--secret", self.credentials.secret_access_key,
                "--region", self.region, "--health", HEALTH, "--quiet"]
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
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
