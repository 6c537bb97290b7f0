"""TLS material: generate a CA and a server certificate, build a TLS 1.3 context.

Generated files live in DATA_DIR/tls/: ca.crt (what clients trust), ca.key
(kept so the server certificate can be re-issued when its names change or it
nears expiry), tls.crt and tls.key. Keys are ECDSA P-256 (fast handshakes)
and written with mode 0600 through write-temp/fsync/rename.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from velocity_engine.fsutil import atomic_write, make_private_dirs

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None  # None when the operator/user brought their own certificate


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context that speaks TLS 1.3 and nothing older."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def default_names(extra: tuple[str, ...] = ()) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    fqdn = socket.getfqdn()
    if fqdn and fqdn not in names:
        names.append(fqdn)
    for n in extra:
        if n not in names:
            names.append(n)
    return names


def ensure_generated(tls_dir: Path, names: list[str]) -> TlsFiles:
    """Create (or re-issue) CA and server certificate under tls_dir."""
    make_private_dirs(tls_dir)
    ca_crt, ca_key = tls_dir / "ca.crt", tls_dir / "ca.key"
    crt, key = tls_dir / "tls.crt", tls_dir / "tls.key"
    if ca_crt.exists() and ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        ca_priv = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        assert isinstance(ca_priv, ec.EllipticCurvePrivateKey)
    else:
        ca_priv = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_priv)
        atomic_write(ca_key, _key_pem(ca_priv), mode=0o600)
        atomic_write(ca_crt, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        log.info("generated a certificate authority in %s", ca_crt)
    if not _server_cert_ok(crt, key, ca_cert, names):
        priv = ec.generate_private_key(ec.SECP256R1())
        cert = _make_server(priv, ca_priv, ca_cert, names)
        atomic_write(key, _key_pem(priv), mode=0o600)
        atomic_write(crt, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        log.info("issued a server certificate for %s", ", ".join(names))
    return TlsFiles(crt, key, ca_crt)


def _key_pem(priv: ec.EllipticCurvePrivateKey) -> bytes:
    return priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(priv: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Velocity local CA")])
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(priv.public_key()), critical=False)
        .sign(priv, hashes.SHA256())
    )


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _make_server(
    priv: ec.EllipticCurvePrivateKey, ca_priv: ec.EllipticCurvePrivateKey, ca: x509.Certificate, names: list[str]
) -> x509.Certificate:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(priv.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_priv.public_key()), critical=False
        )
        .sign(ca_priv, hashes.SHA256())
    )


def _server_cert_ok(crt: Path, key: Path, ca: x509.Certificate, names: list[str]) -> bool:
    if not (crt.exists() and key.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return (
        cert.issuer == ca.subject
        and wanted <= have
        and cert.not_valid_after_utc - _now() > RENEW_BEFORE
    )


def _is_ip(n: str) -> bool:
    try:
        ipaddress.ip_address(n)
    except ValueError:
        return False
    return True


def certificate_expiry(crt: Path) -> float:
    """Unix time at which the certificate expires (for metrics)."""
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    return cert.not_valid_after_utc.timestamp()
