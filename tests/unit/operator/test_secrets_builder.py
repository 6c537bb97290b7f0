"""Secrets: token, CA and server certificate, with the pinned names and keys."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from pathlib import Path

import pytest
from velocity_operator import tlsutil
from velocity_operator.builders import secrets
from velocity_operator.builders.meta import Owner

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _decode(secret: dict[str, object], key: str) -> bytes:
    data = secret["data"]
    assert isinstance(data, dict)
    return base64.b64decode(data[key])


def test_token_is_random_and_long() -> None:
    tokens = {secrets.new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 43 for t in tokens)


def test_auth_secret_name_and_key(owner: Owner) -> None:
    secret = secrets.auth_secret(owner, "s3cret")
    assert secret["metadata"]["name"] == "alpha-auth"
    assert _decode(secret, "token") == b"s3cret"


def test_ca_secret_holds_only_the_certificate(owner: Owner) -> None:
    ca = tlsutil.issue_ca("test-ca", now=NOW)
    public = secrets.ca_secret(owner, ca)
    assert public["metadata"]["name"] == "alpha-ca"
    assert set(public["data"]) == {"ca.crt"}
    private = secrets.ca_key_secret(owner, ca)
    assert private["metadata"]["name"] == "alpha-ca-key"
    assert _decode(private, "tls.key") == ca.key_pem


def test_server_sans_cover_services_and_pods() -> None:
    sans = secrets.server_dns_names("alpha", "prod")
    for name in ("alpha", "alpha.prod.svc", "alpha.prod.svc.cluster.local",
                 "alpha-headless.prod.svc", "*.alpha-headless.prod.svc",
                 "*.alpha-headless.prod.svc.cluster.local"):
        assert name in sans


def test_tls_secret_verifies_against_the_ca(owner: Owner, tmp_path: Path) -> None:
    """A real TLS client trusting only ca.crt accepts the server certificate for pod names."""
    ca = tlsutil.issue_ca("test-ca", now=dt.datetime.now(dt.UTC))
    server = tlsutil.issue_server(ca, secrets.server_dns_names("alpha", "prod"), now=dt.datetime.now(dt.UTC))
    secret = secrets.tls_secret(owner, server, ca.cert_pem)
    assert secret["metadata"]["name"] == "alpha-tls" and secret["type"] == "kubernetes.io/tls"
    (tmp_path / "ca.crt").write_bytes(_decode(secret, "ca.crt"))
    (tmp_path / "tls.crt").write_bytes(_decode(secret, "tls.crt"))
    (tmp_path / "tls.key").write_bytes(_decode(secret, "tls.key"))

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    for hostname in ("alpha-0.alpha-headless.prod.svc.cluster.local", "alpha.prod.svc", "alpha"):
        assert _handshake(client_ctx, server_ctx, hostname) == "TLSv1.3"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client_ctx, server_ctx, "other.prod.svc")


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str) -> str | None:
    """A full TLS handshake over memory BIOs; returns the negotiated version."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                if side is server:
                    continue
                raise
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    return client.version()


@pytest.mark.parametrize("age_days, due", [(0, False), (59, False), (61, True)])
def test_renewal_is_due_with_a_third_of_the_lifetime_left(age_days: int, due: bool) -> None:
    ca = tlsutil.issue_ca("test-ca", now=NOW)
    sans = ["alpha.prod.svc"]
    cert = tlsutil.issue_server(ca, sans, now=NOW).cert_pem
    reason = tlsutil.needs_renewal(cert, ca.cert_pem, sans, now=NOW + dt.timedelta(days=age_days))
    assert (reason is not None) is due
    assert tlsutil.not_after(cert) - tlsutil.renew_at(cert) == dt.timedelta(days=30, seconds=100)


def test_renewal_when_sans_change_or_ca_differs() -> None:
    ca = tlsutil.issue_ca("test-ca", now=NOW)
    cert = tlsutil.issue_server(ca, ["a.prod.svc"], now=NOW).cert_pem
    assert "SANs" in str(tlsutil.needs_renewal(cert, ca.cert_pem, ["a.prod.svc", "b.prod.svc"], now=NOW))
    other = tlsutil.issue_ca("other-ca", now=NOW)
    assert tlsutil.needs_renewal(cert, other.cert_pem, ["a.prod.svc"], now=NOW) == "signed by another CA"


def test_garbage_pem_is_a_typed_error() -> None:
    with pytest.raises(tlsutil.CertificateError):
        tlsutil.not_after(b"not a certificate")
