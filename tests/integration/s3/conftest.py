"""Fixtures: a fresh versitygw process per test (random port, temp dir, always stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.s3_server import S3Server


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    with S3Server(tmp_path) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    s3.client().create_bucket("velocity-backups")
    return "velocity-backups"
