"""Where things live: the repository, the build directory, results and the doc."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
BUILD = BENCH / ".build"  # gitignored: vbench binary, pip --target tools
VBENCH_SRC = BENCH / "vbench"
VBENCH_BIN = BUILD / "vbench"
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "benchmarks.md"
