"""The engine raises the collector's thresholds once its dispatcher exists."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from velocity_engine.config import EngineSettings
from velocity_engine.gc_policy import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD
from velocity_engine.server import Server
from velocity_engine.storage import MemoryStorage


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("default_thresholds")
def test_building_a_server_applies_the_policy(tmp_path: Path) -> None:
    assert gc.get_threshold() == (700, 10, 10)
    Server(EngineSettings(data_dir=tmp_path, insecure=True, storage="memory"), MemoryStorage())
    assert gc.get_threshold() == (GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    assert gc.isenabled()
