#!/usr/bin/env python3
"""Generators for committed artefacts, and their drift checks.

    tools/generate.py fbs [--check]      flatc code for proto/velocity.fbs -> proto/python/vproto/fbs
    tools/generate.py vectors [--check]  proto/vectors/*.json from tools/vector_cases.py

With --check nothing is written; a difference exits 1 and says how to fix it.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "proto" / "velocity.fbs"
FBS_OUT = ROOT / "proto" / "python" / "vproto" / "fbs"
VECTORS_OUT = ROOT / "proto" / "vectors"


def _flatc() -> str:
    exe = Path(sys.executable).parent / "flatc"
    return str(exe) if exe.exists() else "flatc"


def _diff_dirs(a: Path, b: Path) -> list[str]:
    names = {p.name for p in a.iterdir() if p.is_file()} | {p.name for p in b.iterdir() if p.is_file()}
    return sorted(
        n for n in names
        if not (a / n).exists() or not (b / n).exists() or not filecmp.cmp(a / n, b / n, shallow=False)
    )


def gen_fbs(check: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([_flatc(), "--python", "--python-typing", "-o", tmp, str(SCHEMA)], check=True)
        fresh = Path(tmp) / "vproto" / "fbs"
        if check:
            diff = _diff_dirs(fresh, FBS_OUT) if FBS_OUT.exists() else ["(missing)"]
            if diff:
                print(f"generated FlatBuffers code is stale: {', '.join(diff)}; run `make generate`")
                return 1
            print("FlatBuffers code is up to date")
            return 0
        shutil.rmtree(FBS_OUT, ignore_errors=True)
        shutil.copytree(fresh, FBS_OUT)
        print(f"wrote {FBS_OUT.relative_to(ROOT)}")
    return 0


def gen_vectors(check: bool) -> int:
    sys.path[:0] = [str(ROOT / "proto" / "python"), str(ROOT / "tools")]
    from vector_cases import render_all  # type: ignore[import-not-found]

    files = render_all()
    stale = []
    for name, text in files.items():
        path = VECTORS_OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            VECTORS_OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check:
        if stale:
            print(f"test vectors are stale: {', '.join(stale)}; run `make generate`")
            return 1
        print("test vectors are up to date")
    else:
        print(f"wrote {len(files)} vector files to {VECTORS_OUT.relative_to(ROOT)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fbs", "vectors"])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    return gen_fbs(args.check) if args.what == "fbs" else gen_vectors(args.check)


if __name__ == "__main__":
    sys.exit(main())
