"""The operator tier's fixtures (a real kube-apiserver and a running operator), re-exported.

Kept in this directory so the rest of tests/dashboards does not depend on the
Kubernetes harness.
"""

from __future__ import annotations

from tests.operator.conftest import crds, kube_api, kubectl, ns, operator

__all__ = ["crds", "kube_api", "kubectl", "ns", "operator"]
