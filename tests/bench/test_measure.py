"""Waiting for a quiet machine before a run."""

from __future__ import annotations

import time

from velocity_bench.measure import wait_for_quiet


def test_a_quiet_enough_machine_is_not_waited_for() -> None:
    waited, busy = wait_for_quiet(max_wait_s=10, threshold=1000, interval_s=0.1)
    assert waited < 1 and busy >= 0


def test_a_never_quiet_machine_is_waited_for_up_to_the_limit() -> None:
    t0 = time.monotonic()
    waited, _ = wait_for_quiet(max_wait_s=0.5, threshold=-1, interval_s=0.1)  # nothing is below -1 cores
    assert waited >= 0.5 and time.monotonic() - t0 >= 0.5
