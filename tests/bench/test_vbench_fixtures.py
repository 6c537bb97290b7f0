"""vbench's Go tests compare its encoder with frames the Python codec produced
(bench/vbench/testdata/fixtures.json); those must still be what the codec produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GEN = Path(__file__).resolve().parents[2] / "bench" / "vbench" / "testdata" / "gen_fixtures.py"


def test_fixtures_match_the_python_codec() -> None:
    r = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
