"""Secrets: the tokens (NAME-auth for clients, NAME-admin, NAME-replication), the CA
(NAME-ca, NAME-ca-key), the server cert (NAME-tls).

Secret values are only ever placed in `stringData`/`data` here; nothing in the operator
logs an object built by this module.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any, Literal

from .. import names
from ..tlsutil import IssuedCert
from .meta import Owner, object_meta

__all__ = [
    "TOKEN_BYTES",
    "TOKEN_KEY",
    "TokenKind",
    "admin_secret",
    "auth_secret",
    "ca_bundle_secret",
    "ca_key_secret",
    "ca_secret",
    "new_token",
    "replication_secret",
    "server_dns_names",
    "tls_secret",
    "token_secret",
    "token_secret_name",
]

TOKEN_KEY = "token"
TOKEN_BYTES = 32

# The three credentials of a cluster, each in its own Secret under key `token`:
# client (NAME-auth: data opcodes), admin (NAME-admin: everything, incl. PROMOTE,
# REPLICA_OF, SNAPSHOT_*), replication (NAME-replication: REPL_* between engines).
TokenKind = Literal["client", "admin", "replication"]
_TOKEN_SECRETS = {"client": names.auth_secret, "admin": names.admin_secret,
                  "replication": names.replication_secret}


def new_token() -> str:
    """A fresh random token: 32 bytes from the OS CSPRNG, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(owner: Owner, name: str, data: dict[str, bytes], type_: str = "Opaque") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(owner, name),
        "type": type_,
        "data": {key: _b64(value) for key, value in data.items()},
    }


def token_secret_name(cluster: str, kind: TokenKind) -> str:
    return _TOKEN_SECRETS[kind](cluster)


def token_secret(owner: Owner, kind: TokenKind, token: str) -> dict[str, Any]:
    """The Secret of one credential: NAME-auth, NAME-admin or NAME-replication, key `token`."""
    secret = _secret(owner, token_secret_name(owner.name, kind), {TOKEN_KEY: token.encode()})
    secret["metadata"]["labels"]["vdb.io/credential"] = kind
    return secret


def auth_secret(owner: Owner, token: str) -> dict[str, Any]:
    return token_secret(owner, "client", token)


def admin_secret(owner: Owner, token: str) -> dict[str, Any]:
    return token_secret(owner, "admin", token)


def replication_secret(owner: Owner, token: str) -> dict[str, Any]:
    return token_secret(owner, "replication", token)


def ca_secret(owner: Owner, ca: IssuedCert) -> dict[str, Any]:
    """What clients trust: the CA certificate only."""
    return _secret(owner, names.ca_secret(owner.name), {"ca.crt": ca.cert_pem})


def ca_bundle_secret(owner: Owner, ca_pem: bytes) -> dict[str, Any]:
    """NAME-ca from a CA certificate issued elsewhere (cert-manager)."""
    return _secret(owner, names.ca_secret(owner.name), {"ca.crt": ca_pem})


def ca_key_secret(owner: Owner, ca: IssuedCert) -> dict[str, Any]:
    """The CA with its key, read only by the operator to issue server certificates."""
    return _secret(owner, names.ca_key_secret(owner.name), {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem},
                   type_="kubernetes.io/tls")


def tls_secret(owner: Owner, server: IssuedCert, ca_pem: bytes) -> dict[str, Any]:
    return _secret(
        owner, names.tls_secret(owner.name),
        {"tls.crt": server.cert_pem, "tls.key": server.key_pem, "ca.crt": ca_pem},
        type_="kubernetes.io/tls",
    )


def server_dns_names(cluster: str, namespace: str) -> list[str]:
    """The SANs of the server certificate: both Services and every pod, in all forms."""
    return names.service_dns_names(cluster, namespace) + names.pod_dns_names(cluster, namespace)
