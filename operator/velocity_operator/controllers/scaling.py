"""Scaling: up in one step, down one pod at a time, never removing the primary.

The StatefulSet uses Parallel pod management (pods start together), which would also
remove every surplus pod at once on scale-down; the operator therefore lowers
spec.replicas of the StatefulSet by one per step, and takes the next step only once
the previous pod is gone.

Lowering replicas removes the highest ordinal, but the primary (the holder of the Lease
NAME-primary) is whichever pod won the last election: after a rolling update or a
failover it is often not pod 0. A step that would remove the Lease holder is preceded by
a planned switchover to a ready pod that stays (pod 0 first); the step is taken once the
Lease names that pod. `plan_scale` decides, `controllers/switchover.py` talks to the
engine, `controllers/cluster.py` applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..api.cluster import VelocityClusterSpec

__all__ = ["ScaleKind", "ScaleStep", "next_replicas", "plan_scale", "sync_tolerance_warning"]


def next_replicas(desired: int, existing: dict[str, Any] | None) -> int:
    """The replicas to give the StatefulSet now, on the way to `desired`, by ordinals
    alone (plan_scale adds the primary's protection)."""
    if existing is None:
        return desired
    current = int(existing["spec"].get("replicas", desired))
    if desired >= current:
        return desired
    status = existing.get("status") or {}
    stale = int(status.get("observedGeneration", 0)) < int(existing["metadata"].get("generation", 0))
    # Wait while the StatefulSet has not acted on the last step or a removed pod still
    # exists; an unready replica does not block its own removal.
    if stale or int(status.get("replicas", current)) > current:
        return current
    return max(desired, current - 1, 1)


class ScaleKind(Enum):
    APPLY = "apply"  # give the StatefulSet `replicas` (a step down, up, or no change)
    SWITCHOVER = "switchover"  # move the Lease to `target` first; keep `replicas` (= current)
    WAIT = "wait"  # the step would remove the primary and no pod can take over yet


@dataclass(frozen=True)
class ScaleStep:
    kind: ScaleKind
    replicas: int  # what the StatefulSet gets in this reconcile, whatever the kind
    target: str | None = None  # SWITCHOVER: the pod to hand the primary role to
    candidates: tuple[str, ...] = ()  # SWITCHOVER: every acceptable target, preferred first
    reason: str = ""  # SWITCHOVER / WAIT: for the Event


def ordinal_of(cluster: str, pod_name: str) -> int | None:
    suffix = pod_name.removeprefix(f"{cluster}-")
    return int(suffix) if suffix != pod_name and suffix.isdigit() else None


def _ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def plan_scale(cluster: str, desired: int, existing: dict[str, Any] | None, primary: str | None,
               pods: list[dict[str, Any]]) -> ScaleStep:
    """What to do with the StatefulSet's replicas now, on the way to `desired`.

    `primary` is the Lease holder (None: no holder known), `pods` the cluster's pods as
    listed. A step down that keeps the primary is taken as `next_replicas` allows; one that
    would remove it becomes a switchover to a ready pod with an ordinal below the step
    (below `desired` first, so one switchover covers a multi-step scale-down; then the
    lowest ordinal), or a wait when there is none."""
    step = next_replicas(desired, existing)
    if existing is None:
        return ScaleStep(ScaleKind.APPLY, step)
    current = int(existing["spec"].get("replicas", desired))
    if step >= current:
        return ScaleStep(ScaleKind.APPLY, step)
    if primary is None and not any(_ready(p) for p in pods):
        return ScaleStep(ScaleKind.APPLY, step)  # nothing serves, so nothing to protect (a broken cluster)
    if primary is None:
        # Mid-election (or a Lease never taken): the pod about to go may be the one that
        # wins. An election is at most a lease duration away; step down after it.
        return ScaleStep(ScaleKind.WAIT, current, reason=f"no pod holds Lease {cluster}-primary yet: "
                                                         f"scaling to {step} pods after the election")
    primary_ordinal = ordinal_of(cluster, primary)
    if primary_ordinal is None or primary_ordinal < step:
        return ScaleStep(ScaleKind.APPLY, step)
    staying = [(ordinal, p["metadata"]["name"]) for p in pods
               if _ready(p) and (ordinal := ordinal_of(cluster, p["metadata"]["name"])) is not None
               and ordinal < step]
    if not staying:
        return ScaleStep(ScaleKind.WAIT, current,
                         reason=f"{primary} (the primary) would be removed by scaling to {step} pods and no "
                                f"ready pod among {cluster}-0..{cluster}-{step - 1} can take over: waiting")
    ranked = tuple(name for _, name in sorted(staying, key=lambda s: (s[0] >= desired, s[0])))
    return ScaleStep(ScaleKind.SWITCHOVER, current, target=ranked[0], candidates=ranked,
                     reason=f"{primary} (the primary) would be removed by scaling to {step} pods: "
                            f"switching over to {ranked[0]} first")


def sync_tolerance_warning(spec: VelocityClusterSpec) -> str | None:
    """A warning when a sync cluster stops taking writes if any one pod is lost.

    In sync mode each write needs syncReplicas replicas besides the primary; with
    replicas = syncReplicas + 1 every pod is needed, so the loss of any pod (restart,
    node drain, rolling update) refuses writes (NOT_ENOUGH_REPLICAS) until it is back.
    The CRD allows it on purpose (it is the most durable choice for its size)."""
    if spec.replication.mode != "sync":
        return None
    needed = spec.replication.sync_replicas + 2
    if spec.replicas >= needed:
        return None
    return (f"sync replication with {spec.replicas} pods and syncReplicas {spec.replication.sync_replicas}: "
            f"losing any one pod (restart, node drain, rolling update) stops all writes (NOT_ENOUGH_REPLICAS) "
            f"until it is back; tolerating the loss of one pod needs replicas >= syncReplicas + 2 = {needed}")
