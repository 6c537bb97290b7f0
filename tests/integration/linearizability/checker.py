"""Build and run the porcupine checker (tests/linearizability/checker, a Go module of its own)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "tests" / "linearizability" / "checker"


def go() -> str | None:
    return shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)


def build(out_dir: Path) -> Path:
    """`go build` the checker into out_dir (the module's go.sum pins porcupine; nothing is written to the repo)."""
    exe = go()
    if exe is None:
        raise RuntimeError("the linearizability checker needs Go (the repository's Go toolchain)")
    out = out_dir / "checker"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    subprocess.run([exe, "build", "-trimpath", "-o", str(out), "."], cwd=SOURCE, env=env, check=True,
                   capture_output=True, timeout=600)
    return out


@dataclass
class Verdict:
    result: str  # Ok, Illegal, Unknown (the check timed out)
    ops: int
    unknown: int
    by_op: dict[str, int]
    seconds: float
    bad_keys: list[str]
    visualization: str | None

    @property
    def ok(self) -> bool:
        return self.result == "Ok"


def check(checker: Path, history: Path, timeout_s: float = 120.0, viz_dir: Path | None = None) -> Verdict:
    args = [str(checker), "-timeout", f"{timeout_s:g}s"]
    if viz_dir is not None:
        args += ["-viz", str(viz_dir)]
    p = subprocess.run([*args, str(history)], capture_output=True, text=True, timeout=timeout_s + 60)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"checker failed on {history}: {p.stderr.strip()}")
    rep: dict[str, Any] = json.loads(p.stdout.splitlines()[0])
    st = rep["stats"]
    return Verdict(rep["result"], st["ops"], st["unknown"], st["by_op"], rep["seconds"],
                   rep.get("bad_keys") or [], rep.get("visualization"))
