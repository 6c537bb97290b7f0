"""A pinned native LSM engine for the A/B scripts (native_ab.py, native_nice_ab.py).

One place for what both need: start `velocity-engine --data-plane native` on CPU 0
with a fresh data directory, wait for its port, read each thread's CPU time from
/proc/PID/task/*/schedstat (the background threads of velocity-lsm apart), and
remove everything when done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VBENCH = REPO / "bench/.build/vbench"
ENGINE = REPO / ".venv/bin/velocity-engine"
BACKGROUND = ("vlsm-flush", "vlsm-compact")  # velocity-lsm's flush and compaction threads


def threads(pid: int) -> dict[int, str]:
    """Thread id -> name of every thread of `pid` (threads that end meanwhile are skipped)."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(t.name)] = (t / "comm").read_text().strip()
    return out


def cpu_ns(pid: int) -> tuple[int, int]:
    """(worker-and-main ns, background ns) of CPU time summed over the process's threads."""
    fg = bg = 0
    for tid, comm in threads(pid).items():
        try:
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue
        if comm in BACKGROUND:
            bg += ns
        else:
            fg += ns
    return fg, bg


@dataclass
class Engine:
    pid: int
    port: int


@contextlib.contextmanager
def pinned_engine(*extra: str, pythonpath: str = "") -> Iterator[Engine]:
    """A native LSM engine on CPU 0 (`extra`: more flags), ready; killed and removed after."""
    data = tempfile.mkdtemp(prefix="native-ab-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [
        "taskset",
        "-c",
        "0",
        str(ENGINE),
        "--data-plane",
        "native",
        "--insecure",
        "--storage",
        "lsm",
        *extra,
        "--data-dir",
        data,
        "--port",
        str(port),
        "--metrics-port",
        "0",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the engine did not start: {' '.join(cmd)}") from None
                time.sleep(0.05)
        yield Engine(proc.pid, port)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)
