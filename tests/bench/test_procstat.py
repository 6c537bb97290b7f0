"""CPU accounting from /proc against processes whose CPU use is known."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from velocity_bench.procstat import ProcError, cpu_seconds, loadavg, machine_busy_seconds, process_tree

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"


def test_cpu_seconds_counts_the_process_and_its_children() -> None:
    # A parent whose child burns 0.5 s of CPU and then idles: the tree's total reaches 0.5 s
    # although the parent itself used almost none.
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(parent.pid) < 0.5:
            assert time.monotonic() < deadline, "child CPU never showed up in the tree"
            time.sleep(0.05)
        assert len(process_tree(parent.pid)) >= 2
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # parent and child alike
        parent.wait()


def test_a_gone_process_is_an_error() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with pytest.raises(ProcError):
        cpu_seconds(p.pid)


def test_machine_busy_time_grows_while_we_burn_cpu() -> None:
    before = machine_busy_seconds()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert machine_busy_seconds() - before >= 0.2


def test_loadavg_reads_three_numbers() -> None:
    la = loadavg()
    assert min(la.one, la.five, la.fifteen) >= 0
    assert len(str(la).split()) == 3
