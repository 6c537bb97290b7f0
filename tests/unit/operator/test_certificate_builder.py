"""The cert-manager Certificate for spec.tls.certManager."""

from __future__ import annotations

from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.certificate import certificate
from velocity_operator.builders.meta import Owner


def test_certificate_targets_the_pinned_secret_with_all_names(owner: Owner) -> None:
    spec = VelocityClusterSpec.model_validate(
        {"tls": {"certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}})
    assert spec.tls.cert_manager is not None
    cert = certificate(owner, spec.tls.cert_manager)
    assert cert["apiVersion"] == "cert-manager.io/v1" and cert["kind"] == "Certificate"
    assert cert["spec"]["secretName"] == "alpha-tls"
    assert "*.alpha-headless.prod.svc.cluster.local" in cert["spec"]["dnsNames"]
    assert "alpha.prod.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["metadata"]["ownerReferences"][0]["uid"] == owner.uid
