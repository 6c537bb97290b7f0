"""Finding, installing or building what a run needs. Every step is idempotent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from velocity_bench.paths import BUILD, ROOT, VBENCH_BIN, VBENCH_SRC

REDIS_PACKAGES = ("redis-server", "redis-tools")


class ToolError(RuntimeError):
    """A tool the benchmark needs is missing and could not be provided."""


def log(msg: str) -> None:
    import time

    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_redis(install: bool = True) -> None:
    """redis-server and redis-benchmark on PATH, installed with apt-get if missing."""
    missing = [t for t in ("redis-server", "redis-benchmark", "redis-cli") if shutil.which(t) is None]
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", *REDIS_PACKAGES]
    if not install:
        raise ToolError(f"{', '.join(missing)} not found; install with: sudo {' '.join(cmd)}")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise ToolError(f"{', '.join(missing)} not found and not root; run: sudo {' '.join(cmd)}")
        prefix = ["sudo", "-n"]
    log(f"installing {' '.join(REDIS_PACKAGES)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run([*prefix, "apt-get", "update", "-q"], check=True, env=env)
        subprocess.run([*prefix, *cmd], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ToolError(f"apt-get could not install {' '.join(REDIS_PACKAGES)}: {exc}") from None
    # The package may start a system redis on 6379: not ours, and never used (our ports are free ones).


def find_go() -> str:
    for cand in (shutil.which("go"), "/usr/local/go/bin/go"):
        if cand and Path(cand).exists():
            return cand
    raise ToolError("the Go toolchain is needed to build bench/vbench (no `go` on PATH or in /usr/local/go/bin)")


def go_env() -> dict[str, str]:
    # -mod=readonly: a build never rewrites go.mod/go.sum; caches stay outside the repo (Go's defaults).
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")


def build_vbench(force: bool = False) -> Path:
    """bench/.build/vbench, rebuilt when any Go source is newer than the binary."""
    sources = [p for p in VBENCH_SRC.rglob("*") if p.suffix in (".go", ".mod", ".sum")]
    newest = max(p.stat().st_mtime for p in sources)
    if not force and VBENCH_BIN.exists() and VBENCH_BIN.stat().st_mtime >= newest:
        return VBENCH_BIN
    BUILD.mkdir(parents=True, exist_ok=True)
    log(f"building {VBENCH_BIN.relative_to(ROOT)}")
    try:
        subprocess.run(
            [find_go(), "build", "-trimpath", "-o", str(VBENCH_BIN), "."], cwd=VBENCH_SRC, check=True, env=go_env()
        )
    except subprocess.CalledProcessError as exc:
        raise ToolError(f"go build of bench/vbench failed (exit {exc.returncode})") from None
    return VBENCH_BIN


def engine_cmd() -> list[str]:
    venv = ROOT / ".venv" / "bin" / "velocity-engine"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("velocity-engine")
    if found:
        return [found]
    return [sys.executable, "-m", "velocity_engine.cli"]


def py_spy() -> str | None:
    """py-spy from PATH or bench/.build/pytools (pip-installed there on first use); None if unavailable."""
    cand = BUILD / "pytools" / "bin" / "py-spy"
    if cand.exists():
        return str(cand)
    found = shutil.which("py-spy")
    if found:
        return found
    log("installing py-spy into bench/.build/pytools (pip --target)")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(BUILD / "pytools"), "py-spy==0.4.3"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 or not cand.exists():
        log(f"py-spy unavailable: {r.stderr.strip()[-300:]}")
        return None
    return str(cand)
