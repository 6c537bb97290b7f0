"""A cert-manager Certificate for the server certificate (spec.tls.certManager).

cert-manager writes the Secret NAME-tls (tls.crt, tls.key, ca.crt) and renews it; the
operator mirrors its ca.crt into NAME-ca so clients find the trust anchor at the same
place whichever way the certificate is issued. Lifetime and renewal match the
operator's own CA (90 days, renewed 30 days before expiry).
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..api.cluster import CertManagerSpec
from .meta import Owner, object_meta
from .secrets import server_dns_names

__all__ = ["CERT_MANAGER_API", "certificate"]

CERT_MANAGER_API = "cert-manager.io/v1"


def certificate(owner: Owner, spec: CertManagerSpec) -> dict[str, Any]:
    dns = [*server_dns_names(owner.name, owner.namespace), "localhost"]
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": object_meta(owner, names.tls_secret(owner.name)),
        "spec": {
            "secretName": names.tls_secret(owner.name),
            "commonName": dns[0],
            "dnsNames": dns,
            "ipAddresses": ["127.0.0.1"],
            "duration": "2160h",
            "renewBefore": "720h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature"],
            "issuerRef": {"name": spec.issuer_ref.name, "kind": spec.issuer_ref.kind,
                          "group": spec.issuer_ref.group},
        },
    }
