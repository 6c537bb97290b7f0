"""Helpers for the operator's unit tests: an owner and specs built from API-shaped dicts."""

from __future__ import annotations

from typing import Any

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner


@pytest.fixture
def owner() -> Owner:
    return Owner(name="alpha", namespace="prod", uid="0b6f1a8e-uid")


def make_spec(**fields: Any) -> VelocityClusterSpec:
    """A spec as the API server would hand it over (camelCase keys)."""
    return VelocityClusterSpec.model_validate(fields)
