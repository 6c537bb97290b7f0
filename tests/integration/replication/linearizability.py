"""A small linearizability checker for one register (read, write, compare-and-set).

Wing & Gong's search with Lowe's memoisation (the approach of Knossos and
Porcupine): repeatedly pick an operation that could take effect first (no
completed operation returned before it was called), apply it to the model,
and backtrack on a mismatch; (set of linearized operations, register value)
pairs already explored are not explored again.

An operation whose outcome is unknown (the connection broke, a timeout) has
`ret = inf`: it may take effect at any time after its call, or never.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

READ, WRITE, CAS = "read", "write", "cas"


@dataclass(frozen=True)
class Op:
    client: int
    call: float
    ret: float  # math.inf: outcome unknown
    kind: str
    arg: Any = None  # write: the value; cas: (expected, new)
    result: Any = None  # read: the value seen; cas: applied (bool)

    @property
    def known(self) -> bool:
        return self.ret != math.inf


def _step(op: Op, state: Any) -> list[Any]:
    """Model states after `op` from `state` that agree with its result (empty: impossible)."""
    if op.kind == READ:
        return [state] if not op.known or op.result == state else []
    if op.kind == WRITE:
        return [op.arg]
    expected, new = op.arg
    if not op.known:
        return [new] if state == expected else [state]
    if op.result:
        return [new] if state == expected else []
    return [state] if state != expected else []


def check(history: list[Op], initial: Any = None) -> bool:
    """Whether the history of one register is linearizable (iterative search: no recursion limit)."""
    ops = sorted(history, key=lambda o: o.call)
    must = sum(1 << i for i, o in enumerate(ops) if o.known)
    if not must:
        return True
    seen: set[tuple[int, Any]] = {(0, initial)}

    def moves(done: int, state: Any) -> Iterator[tuple[int, Any]]:
        # Nothing can be linearized after the earliest return among pending completed ops.
        horizon = min(o.ret for i, o in enumerate(ops) if not done >> i & 1 and o.known)
        for i, o in enumerate(ops):
            if done >> i & 1:
                continue
            if o.call > horizon:
                break
            for nxt in _step(o, state):
                yield done | 1 << i, nxt

    stack = [moves(0, initial)]
    while stack:
        for done, state in stack[-1]:
            if done & must == must:
                return True
            if (done, state) in seen:
                continue
            seen.add((done, state))
            stack.append(moves(done, state))
            break
        else:
            stack.pop()
    return False
