"""PodDisruptionBudget: voluntary evictions (node drains) take at most one pod at a time."""

from __future__ import annotations

from typing import Any

from .. import names
from .meta import Owner, object_meta

__all__ = ["pod_disruption_budget"]


def pod_disruption_budget(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(owner, names.statefulset(owner.name)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names.selector(owner.name)},
        },
    }
