"""Shared fixtures. Engine processes come from tests/support/engine_proc.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.engine_proc import EngineProcess


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """A TLS + token engine, started fresh for one test and killed afterwards."""
    with EngineProcess(tmp_path / "engine") as eng:
        yield eng


@pytest.fixture
def insecure_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path / "engine-insecure", insecure=True) as eng:
        yield eng
