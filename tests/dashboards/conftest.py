"""Fixtures for the dashboards/alerts tier: promtool, the generator package, a live engine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The generator lives in dashboards/ and is not an installed package (make runs it with
# PYTHONPATH=dashboards); the tests import it the same way.
sys.path.insert(0, str(REPO_ROOT / "dashboards"))


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("no `promtool` on PATH: run `make test-dashboards`, which installs Debian's prometheus")
    return path


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
