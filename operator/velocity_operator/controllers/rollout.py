"""Rolling updates ordered by role: replicas first, the primary last, one pod at a time.

The StatefulSet uses `updateStrategy: OnDelete`, so its controller never restarts a pod
by itself on a template change; the operator deletes the outdated pods (the controller
recreates them from the new template). The StatefulSet's own order (highest ordinal
first) would restart the primary whenever its ordinal comes up, possibly first, and the
Lease would then move to a pod that is restarted again later: several failovers per
update. Here the primary goes last, once every other pod runs the new template and is
ready, so a rollout costs exactly one change of primary.

A pod is outdated when its `controller-revision-hash` differs from the StatefulSet's
`updateRevision`, a hash the StatefulSet controller takes of the whole pod template: the
image, the engine's args (replication and Lease timing flags), the config and certificate
hash annotations, and spec.podTemplate, spec.nodeSelector and spec.podAntiAffinity
(builders/placement.py) all count, with no list here to keep in step.

Deleting the primary's pod is the planned switchover: the engine, on SIGTERM, hands the
Lease and the role to its most up-to-date streaming replica (fence, catch-up, Lease
compare-and-swap, promote; docs/replication.md, "Graceful stop of the primary") before
it exits, within the pod's terminationGracePeriodSeconds. Every other pod is updated and
ready by then (next_pod_to_update waits for it), so the successor runs the new template.
The operator does not drive the switchover itself: it would need a network path and
credentials to the engines for what the engine already does on its own, and measured
(tests/integration/replication/test_lease_switchover.py) the hand-over on SIGTERM loses
no acknowledged write, async mode included, and no client write fails.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..builders.meta import Owner
from ..kube import Kube
from .actions import Action

__all__ = ["REVISION_LABEL", "next_pod_to_update", "rollout_step"]

REVISION_LABEL = "controller-revision-hash"  # set on every pod by the StatefulSet controller


def _ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _ordinal(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["name"].rsplit("-", 1)[-1])


def next_pod_to_update(statefulset: dict[str, Any], pods: list[dict[str, Any]], primary: str | None) -> str | None:
    """The pod to delete now, or None (nothing outdated, or wait: a pod is missing or going,
    an updated pod is not ready, or the StatefulSet controller has not seen the latest
    template yet). Outdated pods that are not ready go first: they serve nothing."""
    meta, spec, status = statefulset["metadata"], statefulset["spec"], statefulset.get("status") or {}
    revision = status.get("updateRevision")
    if not revision or int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return None
    if len(pods) != int(spec.get("replicas", 0)) or any(p["metadata"].get("deletionTimestamp") for p in pods):
        return None  # one pod at a time
    outdated = [p for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision]
    if not outdated:
        return None
    if any(not _ready(p) for p in pods if p not in outdated):
        return None  # an updated pod does not serve (yet, or the new template is broken): wait
    # An outdated pod that does not serve costs nothing to restart (this is how a broken
    # template is replaced by a fixed one); otherwise every pod serves and one may go.
    down = [p for p in outdated if not _ready(p)]
    candidates = down or outdated
    replicas = [p for p in candidates if p["metadata"]["name"] != primary]
    victim = max(replicas, key=_ordinal) if replicas else candidates[0]
    name: str = victim["metadata"]["name"]
    return name


async def rollout_step(kube: Kube, owner: Owner, statefulset: dict[str, Any] | None, primary: str | None,
                       actions: list[Action]) -> None:
    if statefulset is None:
        return
    pods = await kube.list("v1", "Pod", owner.namespace, label_selector=names.selector_string(owner.name))
    victim = next_pod_to_update(statefulset, pods, primary)
    if victim is None:
        return
    role = "the primary, last" if victim == primary else "a replica"
    if await kube.delete("v1", "Pod", owner.namespace, victim):
        actions.append(Action("RollingUpdate", f"restarting {victim} ({role}) on the new pod template"))
