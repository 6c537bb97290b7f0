"""A switchover a user asks for: annotation `vdb.io/switchover-to=POD` on the VelocityCluster.

`kubectl velocity promote NAME POD` sets it (or `kubectl annotate vc NAME
vdb.io/switchover-to=POD`). At its next reconcile the operator asks the current primary's
engine to hand the role to POD, exactly as before a scale-down (controllers/switchover.py:
fence, wait until POD acknowledged every write, Lease compare-and-swap with epoch + 1,
promote), then removes the annotation. The outcome is an Event on the cluster:
`Switchover` (done, with the write pause), `SwitchoverFailed` (the old primary keeps the
role; set the annotation again to retry) or `SwitchoverRejected` (POD is not one of the
cluster's pods, or no pod holds the Lease yet). A request naming the current primary is
already satisfied: removed with a `Switchover` Event saying so.

The annotation is one-shot on purpose: left in place it would pull the primary back to
POD after every later failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .. import names
from ..api.cluster import VelocityClusterSpec
from ..builders.meta import Owner
from ..kube import Kube
from .actions import Action
from .primary import read_primary
from .switchover import SwitchoverError, request_switchover

__all__ = ["SWITCHOVER_ANNOTATION", "Decision", "Plan", "engine_pod_selector", "plan_request",
           "switchover_on_request"]

SWITCHOVER_ANNOTATION = "vdb.io/switchover-to"
_CLUSTER_API = "vdb.io/v1alpha1"


def engine_pod_selector(cluster: str) -> str:
    """The cluster's engine pods only: its backup Jobs' pods carry the cluster selector too."""
    return f"{names.selector_string(cluster)},app.kubernetes.io/component=engine"


class Decision(Enum):
    NONE = "none"  # no request
    DONE = "done"  # the target already is the primary
    REJECT = "reject"  # the request cannot be carried out as given
    SWITCH = "switch"  # ask the primary's engine


@dataclass(frozen=True)
class Plan:
    decision: Decision
    target: str | None = None
    reason: str = ""


def requested_target(body: dict[str, Any]) -> str | None:
    value = ((body.get("metadata") or {}).get("annotations") or {}).get(SWITCHOVER_ANNOTATION)
    return value.strip() or None if isinstance(value, str) else None


def plan_request(cluster: str, body: dict[str, Any], primary: str | None, pods: list[dict[str, Any]]) -> Plan:
    """What to do about the cluster's switchover annotation (pure: `pods` are the cluster's pods)."""
    target = requested_target(body)
    if target is None:
        return Plan(Decision.NONE)
    if target == primary:
        return Plan(Decision.DONE, target, f"{target} already is the primary")
    if target not in {p["metadata"]["name"] for p in pods}:
        return Plan(Decision.REJECT, target, f"{target} is not a pod of cluster {cluster}")
    if primary is None:
        return Plan(Decision.REJECT, target, f"no pod holds Lease {names.lease(cluster)} yet")
    if primary not in {p["metadata"]["name"] for p in pods}:
        return Plan(Decision.REJECT, target, f"the Lease holder {primary} has no pod: wait for the election")
    return Plan(Decision.SWITCH, target, f"{primary} -> {target}")


async def switchover_on_request(kube: Kube, owner: Owner, spec: VelocityClusterSpec, body: dict[str, Any],
                                primary: str | None, actions: list[Action]) -> str | None:
    """Carry out a requested switchover, if any; returns the primary afterwards."""
    if requested_target(body) is None:
        return primary
    pods = await kube.list("v1", "Pod", owner.namespace, label_selector=engine_pod_selector(owner.name))
    plan = plan_request(owner.name, body, primary, pods)
    why = f"requested by annotation {SWITCHOVER_ANNOTATION}={plan.target}"
    if plan.decision is Decision.DONE:
        actions.append(Action("Switchover", f"{plan.reason} ({why})"))
    elif plan.decision is Decision.REJECT:
        actions.append(Action("SwitchoverRejected", f"{plan.reason} ({why})", warning=True))
    elif plan.decision is Decision.SWITCH:
        assert plan.target is not None
        primary_pod = next(p for p in pods if p["metadata"]["name"] == primary)
        try:
            target, pause = await request_switchover(kube, owner, spec, primary_pod, (plan.target,))
        except SwitchoverError as exc:
            actions.append(Action("SwitchoverFailed", f"{exc} ({why}); set the annotation again to retry",
                                  warning=True))
        else:
            actions.append(Action("Switchover", f"{primary} handed the primary role to {target} ({why}; writes "
                                                f"paused {pause * 1000:.0f} ms)"))
            primary = await read_primary(kube, owner)
    # One-shot: the request is answered (by the Event above), whatever the outcome.
    await kube.merge_patch(_CLUSTER_API, "VelocityCluster", owner.namespace, owner.name,
                           {"metadata": {"annotations": {SWITCHOVER_ANNOTATION: None}}})
    return primary
