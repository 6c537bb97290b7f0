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
    "LABEL_VALUE_PATTERN",
    "QUALIFIED_NAME_PATTERN",
    "QUANTITY_PATTERN",
    "ApiModel",
    "Condition",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Quantity",
    "cel",
]

# The pattern Kubernetes itself publishes for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# A label key or annotation key: an optional DNS-subdomain prefix and "/", then a name of
# at most 63 characters (Kubernetes' IsQualifiedName; the prefix's 253 is left to maxLength).
# [.], not an escaped dot: the pattern is also used inside CEL string literals.
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# A label value (Kubernetes' IsValidLabelValue): empty, or up to 63 characters.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"

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


class LabelSelectorRequirement(ApiModel):
    """One expression of a label selector."""

    key: str = Field(description="The label key the expression applies to.", min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] | None = Field(
        default=None, description="The values for In and NotIn; empty for Exists and DoesNotExist."
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector; an empty selector ({}) selects everything."""

    match_labels: dict[str, str] | None = Field(
        default=None, description="Labels an object must have, each with exactly this value."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Further requirements, all of which must hold."
    )
