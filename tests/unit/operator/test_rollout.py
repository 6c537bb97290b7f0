"""Rollout order under OnDelete: one pod at a time, replicas highest ordinal first, the primary last."""

from __future__ import annotations

from typing import Any

from velocity_operator.controllers.rollout import next_pod_to_update


def _sts(replicas: int = 3, revision: str = "new", generation: int = 2, observed: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"updateRevision": revision, "observedGeneration": observed}}


def _pod(name: str, revision: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"controller-revision-hash": revision}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_replicas_first_highest_ordinal_first_primary_last() -> None:
    pods = [_pod("a-0", "old"), _pod("a-1", "old"), _pod("a-2", "old"), _pod("a-10", "old")]
    sts = _sts(replicas=4)
    order = []
    for _ in range(4):
        victim = next_pod_to_update(sts, pods, primary="a-2")
        assert victim is not None
        order.append(victim)
        pods = [_pod(p["metadata"]["name"], "new") if p["metadata"]["name"] == victim else p for p in pods]
    assert order == ["a-10", "a-1", "a-0", "a-2"]
    assert next_pod_to_update(sts, pods, primary="a-2") is None  # done


def test_waits_while_an_updated_pod_is_not_ready_or_a_pod_is_missing_or_going() -> None:
    sts = _sts()
    assert next_pod_to_update(sts, [_pod("a-0", "old"), _pod("a-1", "new", ready=False), _pod("a-2", "new")],
                              "a-0") is None
    assert next_pod_to_update(sts, [_pod("a-0", "old"), _pod("a-1", "new")], "a-0") is None
    assert next_pod_to_update(sts, [_pod("a-0", "old"), _pod("a-1", "new"), _pod("a-2", "old", deleting=True)],
                              "a-0") is None


def test_waits_for_the_controller_to_see_the_template() -> None:
    pods = [_pod("a-0", "old"), _pod("a-1", "old"), _pod("a-2", "old")]
    assert next_pod_to_update(_sts(observed=1), pods, "a-0") is None
    assert next_pod_to_update(_sts(revision=""), pods, "a-0") is None


def test_without_a_known_primary_replicas_order_still_applies() -> None:
    pods = [_pod("a-0", "old"), _pod("a-1", "old")]
    assert next_pod_to_update(_sts(replicas=2), pods, None) == "a-1"


def test_outdated_pods_that_do_not_serve_go_first() -> None:
    """A broken template fixed by a new one: its crashing pods are replaced at once, one
    at a time, even though not every pod is ready."""
    pods = [_pod("a-0", "old"), _pod("a-1", "old", ready=False), _pod("a-2", "old")]
    assert next_pod_to_update(_sts(), pods, "a-0") == "a-1"
    all_down = [_pod("a-0", "old", ready=False), _pod("a-1", "old", ready=False)]
    assert next_pod_to_update(_sts(replicas=2), all_down, "a-0") == "a-1"
