"""An OpenID Connect issuer for web identity tests: discovery document and JWKS over
https, plus the signed tokens (RS256 JWTs) Kubernetes would project into a pod.

    with OidcIssuer(tmp_path) as issuer:          # https://198.18.N.2, in its own netns
        token = issuer.token(sub="system:serviceaccount:prod:backup", aud="sts.amazonaws.com")

versitygw's STS (AssumeRoleWithWebIdentity) fetches the issuer's keys the way AWS does:
https on port 443 only, and never from a loopback or private (10/8, 172.16/12,
192.168/16) address, a guard against server-side request forgery. So the issuer runs in
a network namespace joined to the host by a veth pair with addresses from 198.18.0.0/15,
the range RFC 2544 reserves for benchmarking test networks: traffic to it stays on this
machine, inside the pair. Its certificate comes from a test CA whose SHA-1 thumbprint
the test registers with the OIDC provider, as AWS users do for private CAs.

Needs root and `ip` (tests skip otherwise). Run as a module, it is the server itself:
`python -m tests.support.oidc serve DIR ADDRESS` serves DIR's discovery.json and
jwks.json with DIR's chain.pem and key.pem.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import load_pem_x509_certificate
from velocity_operator import tlsutil

from tests.integration.replication.netns import Veth, netns_available
from tests.support.engine_proc import wait_until

__all__ = ["OidcIssuer", "netns_available"]

REPO = Path(__file__).resolve().parents[2]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcIssuer:
    def __init__(self, base: Path, *, subnet: int | None = None) -> None:
        self.base = base / "oidc"
        # One /24 of 198.18.0.0/15 per test process, so parallel runs do not collide.
        n = subnet if subnet is not None else os.getpid() % 250
        self._veth = Veth("oidc", f"198.18.{n}")
        self.address = self._veth.inner
        self.issuer = f"https://{self.address}"
        self.kid = "velocity-test-1"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca_file = self.base / "ca.crt"
        self.thumbprint = ""
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ tokens
    def token(self, *, sub: str, aud: str, lifetime: float = 3600, issuer: str | None = None,
              key: rsa.RSAPrivateKey | None = None) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": issuer or self.issuer, "sub": sub, "aud": aud, "iat": now, "nbf": now,
                  "exp": now + int(lifetime)}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = (key or self._key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    # ------------------------------------------------------------------ server
    def _write_files(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca = tlsutil.issue_ca("velocity-test-oidc-ca", now=now)
        server = tlsutil.issue_server(ca, ["oidc.test"], now=now, ip_addresses=(self.address,))
        self.ca_file.write_bytes(ca.cert_pem)
        # The CA closes the chain: versitygw pins the thumbprint of the chain's top certificate.
        (self.base / "chain.pem").write_bytes(server.cert_pem + ca.cert_pem)
        (self.base / "key.pem").write_bytes(server.key_pem)
        der = load_pem_x509_certificate(ca.cert_pem).public_bytes(serialization.Encoding.DER)
        self.thumbprint = hashlib.sha1(der).hexdigest()  # the thumbprint format of AWS and versitygw
        numbers = self._key.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
               "e": _b64(numbers.e.to_bytes(3, "big"))}
        (self.base / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        (self.base / "discovery.json").write_text(json.dumps({
            "issuer": self.issuer, "jwks_uri": f"{self.issuer}/keys", "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}))

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the OIDC issuer exited {self.proc.returncode}: "
                               f"{(self.base / 'server.log').read_text()[-2000:]}")
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=1,
                                        context=context) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def __enter__(self) -> OidcIssuer:
        self._write_files()
        self._veth.__enter__()
        try:
            with (self.base / "server.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    ["ip", "netns", "exec", self._veth.ns, sys.executable, "-m", "tests.support.oidc", "serve",
                     str(self.base), self.address], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            wait_until(self._ready, timeout=20, interval=0.1, what=f"OIDC issuer at {self.issuer}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        self._veth.__exit__(None, None, None)


def _serve(directory: Path, address: str) -> None:
    documents = {"/.well-known/openid-configuration": (directory / "discovery.json").read_bytes(),
                 "/keys": (directory / "jwks.json").read_bytes()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"oidc: {self.address_string()} {format % args}\n")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    server = http.server.ThreadingHTTPServer((address, 443), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 4:
        raise SystemExit("usage: python -m tests.support.oidc serve DIR ADDRESS")
    _serve(Path(sys.argv[2]), sys.argv[3])
