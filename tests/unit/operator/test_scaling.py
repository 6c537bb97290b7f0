"""Scale-down steps: one pod at a time, each after the previous pod is gone."""

from __future__ import annotations

from typing import Any

from velocity_operator.controllers.scaling import next_replicas


def _sts(spec: int, replicas: int, ready: int, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": spec},
            "status": {"replicas": replicas, "readyReplicas": ready, "observedGeneration": observed}}


def test_create_and_scale_up_in_one_step() -> None:
    assert next_replicas(3, None) == 3
    assert next_replicas(5, _sts(2, 2, 2)) == 5


def test_scale_down_one_at_a_time() -> None:
    assert next_replicas(1, _sts(3, 3, 3)) == 2
    assert next_replicas(1, _sts(2, 3, 2)) == 2  # pod 2 still terminating: wait
    assert next_replicas(1, _sts(2, 2, 2, generation=3, observed=2)) == 2  # not observed yet
    assert next_replicas(1, _sts(2, 2, 1)) == 1  # an unready replica does not block
    assert next_replicas(1, _sts(1, 1, 1)) == 1


def test_never_below_one() -> None:
    assert next_replicas(1, _sts(1, 1, 0)) == 1
