"""TLS material of a cluster: the operator's CA, the server certificate and its rotation.

The CA (NAME-ca-key, NAME-ca) is created once and kept; the server certificate (NAME-tls)
is re-issued when renewal is due or its SANs no longer match. A new certificate changes
the pod template's TLS hash, which rolls the pods one at a time (readiness-gated), so
clients always find a serving pod. Bring-your-own Secrets (spec.tls.secretName) are only
read, never written.

Rotation on demand (after a key leak, or to test the path): annotate the cluster with
`vdb.io/rotate-certificates=<any new value>`. The value the certificate was last issued
for is kept on NAME-tls under the same annotation, so each new value rotates exactly once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from .. import names, tlsutil
from ..api.cluster import VelocityClusterSpec
from ..api.crd import CLUSTER
from ..builders import secrets
from ..builders.certificate import CERT_MANAGER_API, certificate
from ..builders.meta import Owner
from ..builders.status import CertificateInfo, Problem
from ..conditions import Reason
from ..kube import Kube
from .actions import Action

__all__ = ["ROTATE_ANNOTATION", "TOKEN_KINDS", "TlsState", "ensure_auth_token", "ensure_tls", "ensure_tokens"]

ROTATE_ANNOTATION = "vdb.io/rotate-certificates"


@dataclass(frozen=True)
class TlsState:
    """What the StatefulSet and status need to know about the certificate in use."""

    tls_hash: str | None
    certificate: CertificateInfo | None
    problems: list[Problem] = field(default_factory=list)


def _data(secret: dict[str, object] | None, key: str) -> bytes | None:
    if not secret:
        return None
    data = secret.get("data") or {}
    assert isinstance(data, dict)
    value = data.get(key)
    return base64.b64decode(value) if isinstance(value, str) else None


TOKEN_KINDS: tuple[secrets.TokenKind, ...] = ("client", "admin", "replication")


async def ensure_auth_token(kube: Kube, owner: Owner, actions: list[Action],
                            kind: secrets.TokenKind = "client") -> None:
    """Create the Secret of credential `kind` with a random token once; an existing token is
    never replaced (clients and running engines hold it), and it is never logged."""
    name = secrets.token_secret_name(owner.name, kind)
    existing = await kube.get("v1", "Secret", owner.namespace, name)
    if existing is not None and _data(existing, secrets.TOKEN_KEY):
        return
    created = await kube.create(secrets.token_secret(owner, kind, secrets.new_token()))
    if created is not None:
        what = "auth" if kind == "client" else kind
        actions.append(Action("TokenCreated", f"created {what} token Secret {name}"))


async def ensure_tokens(kube: Kube, owner: Owner, actions: list[Action]) -> None:
    """NAME-auth (clients), NAME-admin and NAME-replication (engines, backups, operator).
    A cluster created before the admin and replication credentials existed gets them here,
    at its next reconcile; the config change that mounts them rolls its pods."""
    for kind in TOKEN_KINDS:
        await ensure_auth_token(kube, owner, actions, kind)


async def _ensure_ca(kube: Kube, owner: Owner, now: dt.datetime, actions: list[Action]) -> tlsutil.IssuedCert:
    key_secret = await kube.get("v1", "Secret", owner.namespace, names.ca_key_secret(owner.name))
    cert_pem, key_pem = _data(key_secret, "tls.crt"), _data(key_secret, "tls.key")
    if cert_pem is None or key_pem is None:
        ca = tlsutil.issue_ca(f"velocity-{owner.namespace}-{owner.name}-ca", now=now)
        if await kube.create(secrets.ca_key_secret(owner, ca)) is None:
            # Another reconcile won the race: use its CA, never two.
            key_secret = await kube.get("v1", "Secret", owner.namespace, names.ca_key_secret(owner.name))
            cert_pem, key_pem = _data(key_secret, "tls.crt"), _data(key_secret, "tls.key")
            assert cert_pem is not None and key_pem is not None
            ca = tlsutil.IssuedCert(cert_pem, key_pem)
        else:
            actions.append(Action("CACreated", f"created certificate authority {names.ca_secret(owner.name)}"))
    else:
        ca = tlsutil.IssuedCert(cert_pem, key_pem)
    # NAME-ca (the trust anchor clients read) always mirrors the CA certificate.
    await kube.apply(secrets.ca_secret(owner, ca))
    return ca


def _annotation(obj: dict[str, Any] | None, key: str) -> str | None:
    value = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) and value else None


async def _rotation_request(kube: Kube, owner: Owner) -> str | None:
    """The cluster's vdb.io/rotate-certificates value (read here rather than passed in, so
    the trigger stays within the TLS controller)."""
    cluster = await kube.get(CLUSTER.api_version, CLUSTER.kind, owner.namespace, owner.name)
    return _annotation(cluster, ROTATE_ANNOTATION)


def _hash(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()[:16]


async def ensure_tls(kube: Kube, owner: Owner, spec: VelocityClusterSpec, now: dt.datetime,
                     actions: list[Action]) -> TlsState:
    if not spec.tls.enabled:
        return TlsState(None, None)
    if spec.tls.secret_name is not None:
        byo = await kube.get("v1", "Secret", owner.namespace, spec.tls.secret_name)
        cert = _data(byo, "tls.crt")
        if cert is None:
            return TlsState(None, None, [Problem(
                Reason.TLS_SECRET_MISSING,
                f"spec.tls.secretName: Secret {spec.tls.secret_name} is missing or has no tls.crt; "
                "pods wait for it")])
        return TlsState(_hash(cert), CertificateInfo(spec.tls.secret_name, tlsutil.not_after(cert), None))
    if spec.tls.cert_manager is not None:
        return await _ensure_cert_manager(kube, owner, spec, actions)

    ca = await _ensure_ca(kube, owner, now, actions)
    tls_name = names.tls_secret(owner.name)
    current = await kube.get("v1", "Secret", owner.namespace, tls_name)
    cert_pem = _data(current, "tls.crt")
    wanted = secrets.server_dns_names(owner.name, owner.namespace)
    why = "missing" if cert_pem is None else tlsutil.needs_renewal(cert_pem, ca.cert_pem, wanted, now=now)
    requested = await _rotation_request(kube, owner)
    if why is None and requested is not None and requested != _annotation(current, ROTATE_ANNOTATION):
        why = f"requested by annotation {ROTATE_ANNOTATION}={requested}"
    if why is not None:
        server = tlsutil.issue_server(ca, wanted, now=now)
        secret = secrets.tls_secret(owner, server, ca.cert_pem)
        if requested is not None:  # remember which request this certificate answers
            secret["metadata"].setdefault("annotations", {})[ROTATE_ANNOTATION] = requested
        await kube.apply(secret)
        cert_pem = server.cert_pem
        reason = "CertificateIssued" if why == "missing" else "CertificateRotated"
        actions.append(Action(reason, f"issued server certificate {tls_name} ({why}), valid until "
                                      f"{tlsutil.not_after(cert_pem):%Y-%m-%d}"))
    assert cert_pem is not None
    return TlsState(
        _hash(cert_pem),
        CertificateInfo(tls_name, tlsutil.not_after(cert_pem), tlsutil.renew_at(cert_pem)),
    )


async def _ensure_cert_manager(kube: Kube, owner: Owner, spec: VelocityClusterSpec,
                               actions: list[Action]) -> TlsState:
    """Apply the Certificate; once cert-manager has written NAME-tls, mirror its CA."""
    assert spec.tls.cert_manager is not None
    if not await kube.has_api(CERT_MANAGER_API):
        return TlsState(None, None, [Problem(
            Reason.CERT_MANAGER_NOT_INSTALLED,
            "spec.tls.certManager is set but the cert-manager.io/v1 API is not served: install "
            "cert-manager, or remove spec.tls.certManager to use the operator's own CA")])
    existing = await kube.get(CERT_MANAGER_API, "Certificate", owner.namespace, names.tls_secret(owner.name))
    await kube.apply(certificate(owner, spec.tls.cert_manager))
    if existing is None:
        actions.append(Action("CertificateRequested", f"created cert-manager Certificate "
                                                      f"{names.tls_secret(owner.name)}"))
    tls_name = names.tls_secret(owner.name)
    issued = await kube.get("v1", "Secret", owner.namespace, tls_name)
    cert, ca = _data(issued, "tls.crt"), _data(issued, "ca.crt")
    if cert is None:
        return TlsState(None, None)  # not issued yet: pods wait for the Secret mount
    if ca is not None:
        await kube.apply(secrets.ca_bundle_secret(owner, ca))
    return TlsState(_hash(cert), CertificateInfo(tls_name, tlsutil.not_after(cert), tlsutil.renew_at(cert)))
