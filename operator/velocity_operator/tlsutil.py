"""The operator's certificate authority: issue a CA and server certificates, decide rotation.

Keys are ECDSA P-256 (small, fast handshakes; TLS 1.3 everywhere). The CA lives ten
years; server certificates live 90 days and are replaced once a third of their lifetime
is left (30 days), so a stalled operator has a month to recover before clients see an
expired certificate. Pure apart from key generation: `now` is always passed in.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_LIFETIME",
    "SERVER_LIFETIME",
    "CertificateError",
    "IssuedCert",
    "issue_ca",
    "issue_server",
    "needs_renewal",
    "not_after",
    "renew_at",
    "sans_of",
]

CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=90)
RENEW_BEFORE_FRACTION = 1 / 3
CLOCK_SKEW = dt.timedelta(minutes=5)


class CertificateError(ValueError):
    """PEM data that is not a usable certificate or key; the message names which."""


@dataclass(frozen=True)
class IssuedCert:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue_ca(common_name: str, *, now: dt.datetime) -> IssuedCert:
    """A self-signed CA allowed to sign server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _load(ca: IssuedCert) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(ca.cert_pem)
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except ValueError as exc:
        raise CertificateError(f"the CA certificate or key is not valid PEM: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"the CA key is a {type(key).__name__}, expected an EC key")
    return cert, key


def issue_server(ca: IssuedCert, dns_names: list[str], *, now: dt.datetime,
                 ip_addresses: tuple[str, ...] = ("127.0.0.1",)) -> IssuedCert:
    """A server certificate signed by `ca` whose SANs are `dns_names` and `ip_addresses`.

    127.0.0.1 and localhost are included by default so `kubectl port-forward` clients
    can verify the server too.
    """
    ca_cert, ca_key = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys([*dns_names, "localhost"])]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def not_after(cert_pem: bytes) -> dt.datetime:
    return _cert(cert_pem).not_valid_after_utc


def renew_at(cert_pem: bytes) -> dt.datetime:
    """When the certificate is due for replacement: a third of its lifetime before expiry."""
    cert = _cert(cert_pem)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - lifetime * RENEW_BEFORE_FRACTION


def sans_of(cert_pem: bytes) -> set[str]:
    try:
        ext = _cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in ext.value.get_values_for_type(x509.DNSName)}


def needs_renewal(cert_pem: bytes, ca_pem: bytes, wanted_dns: list[str], *, now: dt.datetime) -> str | None:
    """Why the server certificate must be re-issued, or None if it is fine."""
    try:
        cert = _cert(cert_pem)
        ca = _cert(ca_pem)
    except CertificateError as exc:
        return f"unreadable: {exc}"
    if cert.issuer != ca.subject:
        return "signed by another CA"
    if now >= renew_at(cert_pem):
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}, renewal due"
    missing = set(wanted_dns) - sans_of(cert_pem)
    if missing:
        return f"SANs miss {sorted(missing)}"
    return None
