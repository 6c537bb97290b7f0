#!/usr/bin/env python3
"""Velocity vs Redis, measured in one run on this machine (`make bench`).

The work is done by the velocity_bench package next to this file; see
`bench/compare.py --help` and bench/velocity_bench/__init__.py for the layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from velocity_bench.main import main

if __name__ == "__main__":
    sys.exit(main())
