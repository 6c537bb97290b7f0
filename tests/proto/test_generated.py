"""Committed generated artefacts match their generators (no drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("what", ["fbs", "vectors"])
def test_no_drift(what: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate.py"), what, "--check"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout
