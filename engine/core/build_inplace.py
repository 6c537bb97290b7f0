"""Build velocity_engine._core in place with setuptools-rust (`make native`).

Run from the repository root. The same extension declaration will move into
pyproject.toml (`[[tool.setuptools-rust.ext-modules]]`) when `make install`
builds the native data plane (docs/engine.md, "Building the core"); until then
this script builds it into the editable install, next to
engine/velocity_engine/__init__.py, replacing the file atomically.
"""

from __future__ import annotations

from setuptools import setup
from setuptools_rust import Binding, RustExtension

setup(
    name="velocity-core-inplace",
    package_dir={"velocity_engine": "engine/velocity_engine"},
    packages=["velocity_engine"],
    rust_extensions=[
        RustExtension(
            "velocity_engine._core",
            path="engine/core/Cargo.toml",
            binding=Binding.PyO3,
            features=["python"],
            debug=False,
        )
    ],
    script_args=["build_rust", "--inplace", "--release"],
)
