from __future__ import annotations

import math

from tests.integration.replication.linearizability import CAS, READ, WRITE, Op, check


def test_sequential_history_is_linearizable() -> None:
    h = [
        Op(0, 0, 1, WRITE, 1), Op(0, 2, 3, READ, result=1), Op(1, 4, 5, CAS, (1, 2), True),
        Op(1, 6, 7, READ, result=2),
    ]
    assert check(h)


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    h = [Op(0, 0, 10, WRITE, 1), Op(1, 1, 9, WRITE, 2), Op(2, 11, 12, READ, result=1)]
    assert check(h)


def test_a_lost_acknowledged_write_is_caught() -> None:
    # write 2 was acknowledged before the read started, yet the read sees 1.
    h = [Op(0, 0, 1, WRITE, 1), Op(0, 2, 3, WRITE, 2), Op(1, 4, 5, READ, result=1)]
    assert not check(h)


def test_unknown_outcomes_may_or_may_not_have_happened() -> None:
    lost = [Op(0, 0, 1, WRITE, 1), Op(0, 2, math.inf, WRITE, 2), Op(1, 4, 5, READ, result=1)]
    applied = [Op(0, 0, 1, WRITE, 1), Op(0, 2, math.inf, WRITE, 2), Op(1, 4, 5, READ, result=2)]
    assert check(lost) and check(applied)
    # ...but a value nobody wrote is never explained.
    assert not check([Op(0, 0, 1, WRITE, 1), Op(1, 4, 5, READ, result=3)])


def test_failed_cas_must_see_a_different_value() -> None:
    assert not check([Op(0, 0, 1, WRITE, 1), Op(1, 2, 3, CAS, (1, 2), False)])
