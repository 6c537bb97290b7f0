"""A throwaway CA and server certificate for redis-server's TLS port."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_test_certs(d: Path) -> Path:
    """EC P-256 CA and server certificate (SAN 127.0.0.1, localhost) in `d`; returns the CA file."""
    d.mkdir(parents=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench-ca")
    ossl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl(
        "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf",
    )  # fmt: skip
    return d / "ca.crt"
