"""A memory cgroup (v1 or v2) for one engine process, so a test can prove it stays under a limit.

    with MemoryCgroup("sec-test", limit_bytes=300 * MiB) as cg:
        cg.add(engine.proc.pid)
        ...
        assert cg.oom_kills() == 0

Needs root and a memory controller; the constructor fails loudly otherwise
(a test that depends on it must not pass without it).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from types import TracebackType

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


class MemoryCgroup:
    def __init__(self, name: str, limit_bytes: int) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("memory cgroup tests need root")
        if (V1 / "memory.limit_in_bytes").exists():
            self.path = V1 / f"velocity-test-{name}-{os.getpid()}"
            self.v2 = False
        elif (V2 / "cgroup.controllers").exists() and "memory" in (V2 / "cgroup.controllers").read_text():
            self.path = V2 / f"velocity-test-{name}-{os.getpid()}"
            self.v2 = True
        else:
            raise RuntimeError("no memory cgroup controller mounted under /sys/fs/cgroup")
        self.path.mkdir(exist_ok=True)
        limit = str(limit_bytes)
        if self.v2:
            (self.path / "memory.max").write_text(limit)
            (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # absent without swap accounting
                (self.path / "memory.memsw.limit_in_bytes").write_text(limit)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        if self.v2:
            for line in (self.path / "memory.events").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
            return 0
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def peak_bytes(self) -> int:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError):
            return int((self.path / name).read_text())
        return 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)  # polled: killed processes leave the cgroup asynchronously

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
