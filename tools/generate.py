#!/usr/bin/env python3
"""Generators for committed artefacts, and their drift checks.

    tools/generate.py fbs [--check]      flatc code for proto/velocity.fbs -> proto/python/vproto/fbs
                                         and proto/rust/src/generated (flatc --rust)
    tools/generate.py vectors [--check]  proto/vectors/*.json from tools/vector_cases.py (frames)
                                         and VALUE_CASES below (values.json)

With --check nothing is written; a difference exits 1 and says how to fix it.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "proto" / "velocity.fbs"
FBS_OUT = ROOT / "proto" / "python" / "vproto" / "fbs"
FBS_RUST_OUT = ROOT / "proto" / "rust" / "src" / "generated"
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
    return _gen_fbs_python(check) | _gen_fbs_rust(check)


def _gen_fbs_rust(check: bool) -> int:
    """flatc --rust writes one velocity_generated.rs; the velocity-proto crate includes it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([_flatc(), "--rust", "-o", tmp, str(SCHEMA)], check=True)
        fresh = Path(tmp)
        if check:
            diff = _diff_dirs(fresh, FBS_RUST_OUT) if FBS_RUST_OUT.exists() else ["(missing)"]
            if diff:
                print(f"generated Rust FlatBuffers code is stale: {', '.join(diff)}; run `make generate`")
                return 1
            print("Rust FlatBuffers code is up to date")
            return 0
        shutil.rmtree(FBS_RUST_OUT, ignore_errors=True)
        shutil.copytree(fresh, FBS_RUST_OUT)
        print(f"wrote {FBS_RUST_OUT.relative_to(ROOT)}")
    return 0


def _gen_fbs_python(check: bool) -> int:
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

    files = {**render_all(), **render_values()}
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


# ---- value vectors: proto/vectors/values.json -----------------------------------
# How the Python SDK types values (vproto/values.py): each case is the value, the
# kind and the payload bytes it is stored as. Every SDK must encode the value to
# exactly this (kind, payload) and decode it back to the same value. "type" says
# how to read "value": bytes (hex), str, int (a decimal string beyond 2^53), json.

VALUE_CASES: list[tuple[str, object]] = [
    ("bytes-empty", b""),
    ("bytes", b"\x00\x01\x7f\x80\xff"),
    ("str-empty", ""),
    ("str", "hello"),
    ("str-unicode", "h\u00e9llo \u2713 \U0001f600"),
    ("int-zero", 0),
    ("int-one", 1),
    ("int-minus-one", -1),
    ("int-negative", -5),
    ("int-max-safe", 2**53 - 1),
    ("int-min-safe", -(2**53 - 1)),
    ("int-2-53", 2**53),
    ("int-beyond-2-53-negative", -(2**53) - 3),
    ("int64-max", 2**63 - 1),
    ("int64-min", -(2**63)),
    ("json-true", True),
    ("json-false", False),
    ("json-null", None),
    ("json-float", 1.5),
    ("json-float-negative", -0.25),
    ("json-object", {"active": True}),
    ("json-empty-object", {}),
    ("json-empty-array", []),
    ("json-array", [1, "two", 3.5, False, None]),
    ("json-nested", {"user": {"id": 7, "tags": ["a", "b"]}, "name": "J\u00f6rg \u2603", "n": None}),
]


def render_values() -> dict[str, str]:
    from vproto.values import encode_value

    cases = []
    for name, value in VALUE_CASES:
        kind, payload = encode_value(value)
        shown: object
        if isinstance(value, bytes):
            typ, shown = "bytes", value.hex()
        elif isinstance(value, str):
            typ, shown = "str", value
        elif isinstance(value, int) and not isinstance(value, bool):
            typ, shown = "int", (str(value) if abs(value) > 2**53 else value)
        else:
            typ, shown = "json", value
        cases.append({"name": name, "type": typ, "value": shown, "kind": int(kind), "payload_hex": payload.hex()})
    doc = {
        "spec": "docs/formats/protocol.md (Keys and values); proto/python/vproto/values.py",
        "notes": "kind 0 Bytes, 1 String, 2 Int, 3 Json; bytes values are lowercase hex; "
        "ints beyond 2^53 are decimal strings",
        "cases": cases,
    }
    return {"values.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fbs", "vectors"])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    return gen_fbs(args.check) if args.what == "fbs" else gen_vectors(args.check)


if __name__ == "__main__":
    sys.exit(main())
