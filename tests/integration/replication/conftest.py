"""Fixtures for replication tests: a cluster of real engine processes, killed at the end."""

from __future__ import annotations

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
