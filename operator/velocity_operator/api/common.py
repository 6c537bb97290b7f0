"""Building blocks shared by the CRD types: the base model, quantities, conditions.

Every model here is part of the public API of the CRDs: field names are the camelCase
aliases, and each `description` becomes the text of `kubectl explain`. Write them as a
sentence that tells a user what the field does and what it defaults to.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema
from pydantic.alias_generators import to_camel

__all__ = [
    "QUANTITY_PATTERN",
    "ApiModel",
    "Condition",
    "Quantity",
    "cel",
]

# The pattern Kubernetes itself publishes for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes quantity such as `1Gi`, `500m` or `2` (an integer or a string)."""


def cel(rule: str, message: str, *, reason: str | None = None,
        field_path: str | None = None) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry: a CEL rule and the message shown on failure."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


class ApiModel(BaseModel):
    """Base of every CRD type: camelCase names on the wire, unknown fields ignored.

    The API server prunes unknown fields before the operator sees an object, so
    `extra="ignore"` only matters for objects written by a newer operator version.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the API server stores it (aliases, no unset optional fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the current state, in the shape of Kubernetes' metav1.Condition."""

    type: str = Field(
        description="Which aspect this condition describes: Ready, Progressing, Degraded "
        "or BackupSucceeded.",
        max_length=316,
    )
    status: ConditionStatus = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str = Field(
        description="A CamelCase word that says why the condition has this status, "
        "for programs to match on.",
        max_length=1024,
    )
    message: str = Field(
        default="", description="A sentence for humans with the details.", max_length=32768
    )
    last_transition_time: dt.datetime = Field(
        description="When the status of this condition last changed."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation of the resource this condition was computed "
        "from; older than metadata.generation means the condition is stale.",
    )
