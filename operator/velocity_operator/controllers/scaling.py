"""Scaling: up in one step, down one pod at a time, never below pod 0 (the primary).

The StatefulSet uses Parallel pod management (pods start together), which would also
remove every surplus pod at once on scale-down; the operator therefore lowers
spec.replicas of the StatefulSet by one per step, and takes the next step only once
the previous pod is gone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["next_replicas"]


def next_replicas(desired: int, existing: dict[str, Any] | None) -> int:
    """The replicas to give the StatefulSet now, on the way to `desired`."""
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
