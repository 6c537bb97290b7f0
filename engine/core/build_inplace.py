"""Rebuild velocity_engine._core in place (`make install` / `make native`, after a Rust change).

Run from the repository root with the venv's interpreter (its dev extra pins the same
setuptools and setuptools-rust as pyproject.toml's [build-system]). The extension is
declared once, in pyproject.toml ([[tool.setuptools-rust.ext-modules]]): setuptools reads
that file from the current directory and setuptools-rust's plugin turns the table into
the RustExtension that `pip install -e .` and `pip wheel .` build. This script runs only
its `build_rust --inplace` step, so a Rust change costs the cargo build and nothing of a
pip install (resolver, build environment, metadata). setuptools-rust copies the library
next to engine/velocity_engine/__init__.py and renames it into place: a running engine
keeps the file it loaded. docs/engine.md, "Building the core".
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parents[2]

if Path.cwd() != ROOT:
    sys.exit(f"build_inplace.py: run it from the repository root ({ROOT}), not {Path.cwd()}")

# pyproject.toml is the whole configuration; nothing is declared here. --release is the
# declaration's `debug = false`, repeated so an edit there cannot turn `make native` into
# a debug build behind the engine's back.
setup(script_args=["build_rust", "--inplace", "--release"])
