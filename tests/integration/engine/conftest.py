"""One engine per module for the tests that do not restart or break it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engine_proc import EngineProcess


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path_factory.mktemp("engine")) as eng:
        yield eng
