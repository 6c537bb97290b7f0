"""Scale-down steps: one pod at a time, each after the previous pod is gone, never the primary
(a switchover first); the choice of switchover target; the sync-mode sizing warning."""

from __future__ import annotations

from typing import Any

from velocity_operator.controllers.scaling import (
    ScaleKind,
    ScaleStep,
    next_replicas,
    plan_scale,
    sync_tolerance_warning,
)
from velocity_operator.controllers.switchover import choose_target, engine_endpoint

from .conftest import make_spec


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


# -- plan_scale: a step down never removes the primary ---------------------------------


def _pod(name: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _pods(n: int, *, unready: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [_pod(f"alpha-{i}", ready=i not in unready) for i in range(n)]


def test_step_down_that_keeps_the_primary_is_taken() -> None:
    step = plan_scale("alpha", 1, _sts(3, 3, 3), "alpha-0", _pods(3))
    assert step == ScaleStep(ScaleKind.APPLY, 2)
    assert plan_scale("alpha", 1, _sts(3, 3, 3), "alpha-1", _pods(3)).kind is ScaleKind.APPLY  # pod 2 goes


def test_step_down_that_would_remove_the_primary_switches_over_to_pod_0_first() -> None:
    step = plan_scale("alpha", 1, _sts(3, 3, 3), "alpha-2", _pods(3))
    assert step.kind is ScaleKind.SWITCHOVER
    assert step.replicas == 3  # nothing removed in this reconcile
    assert step.target == "alpha-0"
    # Below the final size first (one switchover for the whole scale-down), then the lowest ordinal.
    assert step.candidates == ("alpha-0", "alpha-1")
    assert "alpha-2" in step.reason and "alpha-0" in step.reason


def test_switchover_target_prefers_a_pod_that_stays_to_the_end() -> None:
    # 4 -> 2: pod 3 (primary) goes first; pods 0 and 1 stay, pod 2 goes next.
    step = plan_scale("alpha", 2, _sts(4, 4, 4), "alpha-3", _pods(4, unready=(0,)))
    assert step.kind is ScaleKind.SWITCHOVER
    assert step.candidates == ("alpha-1", "alpha-2")  # pod 0 is not ready


def test_no_ready_pod_to_take_over_waits() -> None:
    step = plan_scale("alpha", 1, _sts(2, 2, 1), "alpha-1", _pods(2, unready=(0,)))
    assert step == ScaleStep(ScaleKind.WAIT, 2, reason=step.reason)
    assert "alpha-1" in step.reason and "waiting" in step.reason
    terminating = [_pod("alpha-0", deleting=True), _pod("alpha-1")]
    assert plan_scale("alpha", 1, _sts(2, 2, 2), "alpha-1", terminating).kind is ScaleKind.WAIT


def test_after_the_switchover_the_step_is_taken() -> None:
    assert plan_scale("alpha", 1, _sts(3, 3, 3), "alpha-0", _pods(3)) == ScaleStep(ScaleKind.APPLY, 2)
    # ... and the next one, once pod 2 is gone.
    assert plan_scale("alpha", 1, _sts(2, 2, 2), "alpha-0", _pods(2)) == ScaleStep(ScaleKind.APPLY, 1)


def test_mid_election_waits_unless_nothing_serves() -> None:
    assert plan_scale("alpha", 1, _sts(3, 3, 3), None, _pods(3)).kind is ScaleKind.WAIT
    broken = _pods(3, unready=(0, 1, 2))
    assert plan_scale("alpha", 1, _sts(3, 3, 0), None, broken) == ScaleStep(ScaleKind.APPLY, 2)


def test_scale_up_create_and_pending_steps_ignore_the_primary() -> None:
    assert plan_scale("alpha", 3, None, None, []) == ScaleStep(ScaleKind.APPLY, 3)
    assert plan_scale("alpha", 5, _sts(3, 3, 3), "alpha-2", _pods(3)) == ScaleStep(ScaleKind.APPLY, 5)
    # The previous step is not done (pod 2 still terminating): no switchover either.
    assert plan_scale("alpha", 1, _sts(2, 3, 2), "alpha-1", _pods(3)) == ScaleStep(ScaleKind.APPLY, 2)


def test_a_holder_that_is_not_a_pod_of_the_cluster_does_not_block() -> None:
    assert plan_scale("alpha", 1, _sts(2, 2, 2), "beta-1", _pods(2)) == ScaleStep(ScaleKind.APPLY, 1)


# -- choose_target: a streaming replica that is close behind ----------------------------


def _feed(pod: str, state: str = "streaming", lag: float = 0.0) -> dict[str, Any]:
    return {"endpoint": f"vdb://{pod}.alpha-headless.prod.svc:2005", "state": state, "lag_seconds": lag}


def test_choose_target_takes_the_preferred_streaming_replica() -> None:
    feeds = [_feed("alpha-1"), _feed("alpha-0")]
    assert choose_target("alpha", "prod", ("alpha-0", "alpha-1"), feeds) == "alpha-0"


def test_choose_target_skips_full_copies_and_far_behind_replicas() -> None:
    feeds = [_feed("alpha-0", state="full_copy"), _feed("alpha-1", lag=5.0), _feed("alpha-2")]
    assert choose_target("alpha", "prod", ("alpha-0", "alpha-1", "alpha-2"), feeds) == "alpha-2"
    # Only far-behind ones: the best of them (the engine's catch-up bound decides).
    assert choose_target("alpha", "prod", ("alpha-0", "alpha-1"), feeds) == "alpha-1"
    assert choose_target("alpha", "prod", ("alpha-0",), feeds) is None
    assert choose_target("alpha", "prod", ("alpha-0",), []) is None


def test_engine_endpoint_is_what_the_engines_advertise() -> None:
    assert engine_endpoint("alpha", "prod", "alpha-0") == "vdb://alpha-0.alpha-headless.prod.svc:2005"


# -- sync clusters that cannot lose a pod ---------------------------------------------


def test_sync_cluster_that_cannot_lose_a_pod_is_warned_about() -> None:
    warning = sync_tolerance_warning(make_spec(replicas=2, replication={"mode": "sync", "syncReplicas": 1}))
    assert warning is not None
    assert "NOT_ENOUGH_REPLICAS" in warning and "replicas >= syncReplicas + 2 = 3" in warning
    assert sync_tolerance_warning(make_spec(replicas=4, replication={"mode": "sync", "syncReplicas": 3}))


def test_sync_cluster_with_a_spare_pod_and_async_clusters_are_not() -> None:
    assert sync_tolerance_warning(make_spec(replicas=3, replication={"mode": "sync", "syncReplicas": 1})) is None
    assert sync_tolerance_warning(make_spec(replicas=2, replication={"mode": "async"})) is None
    assert sync_tolerance_warning(make_spec(replicas=1)) is None
