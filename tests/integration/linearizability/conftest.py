"""Fixtures: the porcupine checker, built once per session from tests/linearizability/checker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.linearizability.checker import build, go
from tests.integration.replication.cluster import Cluster


@pytest.fixture(scope="session")
def checker_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if go() is None:
        pytest.fail("the linearizability checker needs Go: it is part of the repository's toolchain")
    return build(tmp_path_factory.mktemp("checker"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.close()
