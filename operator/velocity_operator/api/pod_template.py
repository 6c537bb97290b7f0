"""spec.podTemplate: what a user may add to the engine pods' template (issue 17).

Not a Kubernetes PodTemplateSpec, on purpose: the operator owns the containers, volumes,
probes and security context, so only placement and metadata are open. A PodTemplateSpec
would suggest that any Pod field is accepted, and the API server silently prunes the
ones this schema does not know. Every field here is copied into the StatefulSet's pod
template, so changing one rolls the pods like any other template change (replicas
first, the primary last; controllers/rollout.py).

How it combines with the older fields (builders/placement.py):
- spec.nodeSelector stays the node selector; podTemplate.affinity.nodeAffinity is
  added to it (Kubernetes requires both to hold).
- spec.podAntiAffinity keeps generating its one term (the cluster's pods on different
  nodes); podTemplate.affinity.podAntiAffinity terms are added after it. Set
  spec.podAntiAffinity to None to use only yours.
- labels may not use the keys the operator and the StatefulSet controller set (CEL);
  annotations may not use vdb.io/ keys; prometheus.io/ annotations given here replace
  the operator's.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue

from .common import LABEL_VALUE_PATTERN, QUALIFIED_NAME_PATTERN, ApiModel, cel
from .destination import DNS_SUBDOMAIN_PATTERN
from .scheduling import Affinity, Toleration, TopologySpreadConstraint

__all__ = [
    "MAX_METADATA_ENTRIES",
    "RESERVED_ANNOTATION_PREFIX",
    "RESERVED_LABEL_KEYS",
    "RESERVED_LABEL_PREFIX",
    "LocalObjectReference",
    "PodTemplate",
    "annotations_rules",
    "labels_rules",
]

MAX_METADATA_ENTRIES = 64

# Labels the operator puts on every engine pod (names.labels, plus the component), and
# the ones the StatefulSet controller adds: the selectors of the StatefulSet, the
# Services, the PodDisruptionBudget, the NetworkPolicy and the PodMonitor rely on them.
RESERVED_LABEL_KEYS: tuple[str, ...] = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
)
RESERVED_LABEL_PREFIX = "vdb.io/"  # vdb.io/role: the client Service routes on it
RESERVED_ANNOTATION_PREFIX = "vdb.io/"  # vdb.io/config-hash, vdb.io/tls-hash

_KEYS_VALID = cel(
    f"self.all(k, size(k) <= 317 && k.matches('{QUALIFIED_NAME_PATTERN}'))",
    "every key must be a qualified name: an optional DNS-subdomain prefix and '/', then at "
    "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
)


def labels_rules() -> list[JsonValue]:
    """The CEL rules of podTemplate.labels."""
    reserved = ", ".join(f"'{k}'" for k in RESERVED_LABEL_KEYS)
    return [
        _KEYS_VALID,
        cel(
            f"self.all(k, !(k in [{reserved}]) && !k.startsWith('{RESERVED_LABEL_PREFIX}'))",
            "podTemplate.labels cannot set the labels the operator selects its pods by "
            f"({', '.join(RESERVED_LABEL_KEYS)}) nor {RESERVED_LABEL_PREFIX} labels",
            reason="FieldValueForbidden",
        ),
    ]


def annotations_rules(what: str) -> list[JsonValue]:
    """The CEL rules of a map of annotations (`what` names it in the message)."""
    return [
        _KEYS_VALID,
        cel(
            f"self.all(k, !k.startsWith('{RESERVED_ANNOTATION_PREFIX}'))",
            f"{what} cannot set {RESERVED_ANNOTATION_PREFIX} annotations (the operator's own)",
            reason="FieldValueForbidden",
        ),
    ]


LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class LocalObjectReference(ApiModel):
    """An object in the cluster's namespace, by name."""

    name: str = Field(
        description="Name of the object, a Secret of type kubernetes.io/dockerconfigjson "
        "for imagePullSecrets.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )


class PodTemplate(ApiModel):
    """Placement and metadata added to the engine pods' template."""

    labels: dict[str, LabelValue] | None = Field(
        default=None,
        description="Labels added to the engine pods, for example for cost allocation or a "
        "mesh. The operator's own (app.kubernetes.io/name, instance, managed-by, part-of, "
        "component; vdb.io/*) and the StatefulSet controller's are refused. Changing them "
        "rolls the pods.",
        max_length=MAX_METADATA_ENTRIES,
        json_schema_extra={"x-kubernetes-validations": labels_rules()},
    )
    annotations: dict[str, str] | None = Field(
        default=None,
        description="Annotations added to the engine pods. vdb.io/ keys are the operator's "
        "and refused; prometheus.io/scrape, port and path given here replace the operator's. "
        "Changing them rolls the pods.",
        max_length=MAX_METADATA_ENTRIES,
        json_schema_extra={"x-kubernetes-validations": annotations_rules("podTemplate.annotations")},
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        description="Taints the pods tolerate, as in a Pod's tolerations: needed to run on "
        "tainted nodes (for example nodes dedicated to Velocity). Default: none.",
        max_length=32,
    )
    affinity: Affinity | None = Field(
        default=None,
        description="The pods' affinity, as in a Pod's affinity field. nodeAffinity applies "
        "together with spec.nodeSelector (both must hold); podAntiAffinity terms are added to "
        "the one spec.podAntiAffinity generates (set it to None to use only yours). Default: "
        "only spec.podAntiAffinity's term.",
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None,
        description="How to spread the pods over zones or nodes, as in a Pod's "
        "topologySpreadConstraints; a constraint without labelSelector counts the cluster's "
        "own pods. Default: none.",
        max_length=8,
    )
    priority_class_name: str | None = Field(
        default=None,
        description="The PriorityClass of the pods, for example system-cluster-critical or one "
        "of your own: a higher priority lets them preempt other pods, and be preempted last. "
        "Default: none (the cluster's default priority).",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None,
        description="Secrets in the cluster's namespace with credentials for pulling the "
        "engine image from a private registry. Default: none (the ServiceAccount's, which "
        "is NAME-engine).",
        max_length=16,
    )
