"""What a reconciliation did, for Events; and the operator-wide settings controllers use."""

from __future__ import annotations

from dataclasses import dataclass

from ..builders.statefulset import DEFAULT_IMAGE

__all__ = ["Action", "Settings"]


@dataclass(frozen=True)
class Action:
    """One thing the operator did or refused, posted as an Event on the resource."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Settings:
    """Operator-wide configuration (command-line flags of velocity-operator)."""

    default_image: str = DEFAULT_IMAGE
