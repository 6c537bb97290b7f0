"""Volume sizes: grow the PVCs when the spec asks for more, refuse to shrink.

StatefulSet claim templates are immutable, so growth is applied to each existing PVC
(the StorageClass must allow expansion); a smaller size is refused with a Degraded
condition and the cluster keeps running on its current volumes.
"""

from __future__ import annotations

from .. import names
from ..api.cluster import VelocityClusterSpec
from ..builders.meta import Owner
from ..builders.status import Problem
from ..conditions import Reason
from ..kube import ApiError, Kube
from ..quantity import parse_quantity
from .actions import Action

__all__ = ["reconcile_storage", "shrink_problems"]


def _wanted(spec: VelocityClusterSpec) -> dict[str, str]:
    return {names.AOF_VOLUME: str(spec.storage.aof.size),
            names.SNAPSHOTS_VOLUME: str(spec.storage.snapshots.size)}


def shrink_problems(spec: VelocityClusterSpec, current: dict[str, str]) -> list[Problem]:
    """A Problem for every volume the spec asks to make smaller than it is."""
    problems = []
    for volume, size in _wanted(spec).items():
        have = current.get(volume)
        if have is not None and parse_quantity(size) < parse_quantity(have):
            problems.append(Problem(
                Reason.STORAGE_SHRINK_REFUSED,
                f"spec.storage.{volume}.size {size} is smaller than the current {have}: volumes "
                f"cannot shrink; set it back to at least {have} (or restore a backup into a "
                "new cluster)",
            ))
    return problems


async def reconcile_storage(kube: Kube, owner: Owner, spec: VelocityClusterSpec, current: dict[str, str],
                            existing_pods: int, actions: list[Action]) -> list[Problem]:
    """Expand existing claims that are smaller than the spec; report shrink requests."""
    problems = shrink_problems(spec, current)
    for volume, size in _wanted(spec).items():
        want = parse_quantity(size)
        for ordinal in range(existing_pods):
            claim_name = names.claim(volume, owner.name, ordinal)
            claim = await kube.get("v1", "PersistentVolumeClaim", owner.namespace, claim_name)
            if claim is None:
                continue
            have = claim["spec"]["resources"]["requests"]["storage"]
            if want <= parse_quantity(have):
                continue
            if (claim.get("status") or {}).get("phase") != "Bound":
                continue  # only bound claims can grow; retried at the next resync
            try:
                await kube.merge_patch("v1", "PersistentVolumeClaim", owner.namespace, claim_name,
                                       {"spec": {"resources": {"requests": {"storage": size}}}})
            except ApiError as exc:
                # Typically a StorageClass without allowVolumeExpansion: report, keep running.
                problems.append(Problem(Reason.VOLUME_EXPANSION_FAILED,
                                        f"cannot grow {claim_name} to {size}: {exc.message or exc.reason}"))
                continue
            actions.append(Action("VolumeExpanded", f"requested {size} for {claim_name} (was {have})"))
    return problems
