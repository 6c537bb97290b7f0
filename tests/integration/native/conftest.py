"""The Lease tests of the native data plane need the tier-1 Kubernetes API server."""

from __future__ import annotations

import os

from tests.kube.plugin import kube_api

__all__ = ["kube_api"]

# As tests/integration/replication/conftest.py: the Kubernetes binaries are their own
# tier (`make test-replication-lease` builds them first and sets this variable).
collect_ignore = [] if os.environ.get("VELOCITY_LEASE_TESTS") == "1" else ["test_native_lease.py"]
