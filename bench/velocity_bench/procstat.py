"""CPU time and load, read from /proc (Linux only).

Server CPU is utime+stime (fields 14 and 15 of /proc/PID/stat, all threads
included) summed over the process and its live descendants, so a server that
forks (redis AOF rewrite) or execs through a wrapper is counted whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class ProcError(RuntimeError):
    """/proc could not be read as expected."""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields from #3 (state) on; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f:
                children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and its live descendants, in seconds."""
    total = 0
    found = False
    for p in process_tree(pid):
        f = _stat_fields(p)
        if f:
            found = True
            total += int(f[11]) + int(f[12])
    if not found:
        raise ProcError(f"process {pid} is gone")
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (first line of /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    if fields[0] != "cpu":
        raise ProcError("unexpected /proc/stat layout")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class LoadAvg:
    one: float
    five: float
    fifteen: float

    def __str__(self) -> str:
        return f"{self.one:.2f} {self.five:.2f} {self.fifteen:.2f}"


def loadavg() -> LoadAvg:
    one, five, fifteen = (float(x) for x in Path("/proc/loadavg").read_text().split()[:3])
    return LoadAvg(one, five, fifteen)
