"""Fixtures for replication tests: a cluster of real engine processes, killed at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.replication.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.close()


# The tier-1 Kubernetes API server (etcd + kube-apiserver), for the Lease tests.
from tests.kube.plugin import kube_api  # noqa: E402

__all__ = ["cluster", "kube_api"]

# test_lease*.py need the Kubernetes binaries, which `make test-integration` does
# not build: it is its own tier, `make test-replication-lease` (mk/replication.mk),
# which builds them first and sets this variable.
collect_ignore = [] if os.environ.get("VELOCITY_LEASE_TESTS") == "1" else ["test_lease.py", "test_lease_switchover.py"]
