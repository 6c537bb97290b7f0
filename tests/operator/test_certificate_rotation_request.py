"""Certificate rotation on demand: the vdb.io/rotate-certificates annotation (tier 1)."""

from __future__ import annotations

import base64
from typing import Any

from velocity_operator.controllers.tls import ROTATE_ANNOTATION

from .conftest import Kubectl, OperatorProcess, cluster, wait_for


def _tls(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    secret = wait_for(f"Secret {name}-tls", lambda: kubectl.get("secret", f"{name}-tls", ns))
    return secret


def _reconciles(operator: OperatorProcess) -> float:
    """Successful VelocityCluster reconciles so far (all namespaces: only ever grows)."""
    for line in operator.metrics().splitlines():
        if line.startswith('velocity_operator_reconciles_total{resource="VelocityCluster",result="success"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _template_hash(kubectl: Kubectl, ns: str, name: str) -> str:
    sts = wait_for(f"StatefulSet {name}", lambda: kubectl.get("statefulset", name, ns))
    return str(sts["spec"]["template"]["metadata"]["annotations"]["vdb.io/tls-hash"])


def test_each_new_annotation_value_rotates_once(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("rot", ns))
    first = _tls(kubectl, ns, "rot")
    first_hash = _template_hash(kubectl, ns, "rot")
    ca_key = kubectl.get("secret", "rot-ca-key", ns)

    kubectl.run("annotate", "vc", "rot", "-n", ns, f"{ROTATE_ANNOTATION}=one")
    second = wait_for("a new certificate", lambda: (s := _tls(kubectl, ns, "rot"))
                      and s["data"]["tls.crt"] != first["data"]["tls.crt"] and s, timeout=30)
    assert second["metadata"]["annotations"][ROTATE_ANNOTATION] == "one"
    assert second["data"]["ca.crt"] == first["data"]["ca.crt"]  # same CA: clients keep trusting
    assert kubectl.get("secret", "rot-ca-key", ns) == ca_key
    wait_for("a new tls-hash", lambda: _template_hash(kubectl, ns, "rot") != first_hash, timeout=30)
    events = kubectl.items("events", ns)
    assert any(e.get("reason") == "CertificateRotated" and "rotate-certificates=one" in e.get("message", "")
               for e in events), [e.get("message") for e in events]

    # The same value stays answered: two more reconciles (a change, then resyncs) rotate nothing.
    done = _reconciles(operator)
    kubectl.run("label", "vc", "rot", "-n", ns, "nudge=1")
    wait_for("two more reconciles", lambda: _reconciles(operator) >= done + 2, timeout=60)
    assert _tls(kubectl, ns, "rot")["data"]["tls.crt"] == second["data"]["tls.crt"]

    kubectl.run("annotate", "vc", "rot", "-n", ns, f"{ROTATE_ANNOTATION}=two", "--overwrite")
    third = wait_for("another certificate", lambda: (s := _tls(kubectl, ns, "rot"))
                     and s["data"]["tls.crt"] != second["data"]["tls.crt"] and s, timeout=30)
    assert third["metadata"]["annotations"][ROTATE_ANNOTATION] == "two"
    assert base64.b64decode(third["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
