"""REST paths of the kinds the operator manages."""

from __future__ import annotations

import pytest
from velocity_operator.kube import resource_for


def test_core_and_group_paths() -> None:
    assert resource_for("v1", "Secret").path("prod", "alpha-auth") == "/api/v1/namespaces/prod/secrets/alpha-auth"
    assert resource_for("apps/v1", "StatefulSet").path("prod") == "/apis/apps/v1/namespaces/prod/statefulsets"
    status = resource_for("vdb.io/v1alpha1", "VelocityCluster").path("prod", "alpha", "status")
    assert status == "/apis/vdb.io/v1alpha1/namespaces/prod/velocityclusters/alpha/status"
    assert resource_for("v1", "Namespace").path(None, "prod") == "/api/v1/namespaces/prod"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="does not manage Deployment"):
        resource_for("apps/v1", "Deployment")
