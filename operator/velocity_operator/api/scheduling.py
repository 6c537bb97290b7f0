"""Kubernetes' scheduling types (core/v1), mirrored for spec.podTemplate (issue 17).

Tolerations, the full Affinity (node affinity, pod affinity, pod anti-affinity) and
topology spread constraints, field for field as a Pod spells them, so that what a user
writes here is what lands in the pods' template and what the Kubernetes documentation
describes. Each type is validated by the schema and, where Kubernetes' own validation
has cross-field rules that would otherwise only fail when the operator applies the
StatefulSet, by CEL rules at admission.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import QUALIFIED_NAME_PATTERN, ApiModel, LabelSelector, cel

__all__ = [
    "Affinity",
    "NodeAffinity",
    "NodeSelector",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PodAffinity",
    "PodAffinityTerm",
    "PodAntiAffinity",
    "PreferredSchedulingTerm",
    "Toleration",
    "TopologySpreadConstraint",
    "WeightedPodAffinityTerm",
]

MAX_TERMS = 16


class Toleration(ApiModel):
    """Lets the pods be scheduled onto (or keep running on) nodes with a matching taint."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
                    "a toleration without a key must use operator Exists (it then tolerates every taint)",
                ),
                cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "a toleration with operator Exists takes no value",
                ),
                cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds needs effect NoExecute",
                ),
            ]
        }
    )

    key: str | None = Field(
        default=None,
        description="The taint key the toleration matches, for example "
        "node-role.example.com/velocity. Empty (with operator Exists) matches every key.",
        max_length=317,
        pattern=f"^$|{QUALIFIED_NAME_PATTERN}",
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="Equal (the default): the taint's value must equal value. Exists: any "
        "value of the key matches.",
    )
    value: str | None = Field(
        default=None,
        description="The taint value to match with operator Equal; empty with Exists.",
        max_length=63,
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="The taint effect to match: NoSchedule, PreferNoSchedule or NoExecute. "
        "Omit it to match every effect.",
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="With effect NoExecute: how long a pod stays on a node after the taint "
        "appears (for example node.kubernetes.io/unreachable) before it is evicted. Omit it "
        "to stay forever; 0 or less evicts at once.",
    )


class NodeSelectorRequirement(ApiModel):
    """One condition on a node's labels (matchExpressions) or fields (matchFields)."""

    key: str = Field(description="The node label key (or field name, in matchFields) the condition applies to.",
                     min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="How the key relates to the values: In, NotIn, Exists, DoesNotExist, or "
        "Gt and Lt (the value read as an integer)."
    )
    values: list[str] | None = Field(
        default=None,
        description="The values: one or more for In and NotIn, exactly one integer for Gt and "
        "Lt, none for Exists and DoesNotExist.",
        max_length=64,
    )


class NodeSelectorTerm(ApiModel):
    """Conditions on a node, all of which must hold (an empty term matches no node)."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Conditions on the node's labels.", max_length=MAX_TERMS
    )
    match_fields: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Conditions on the node's fields (metadata.name only).", max_length=MAX_TERMS
    )


class NodeSelector(ApiModel):
    """Terms of which at least one must match a node."""

    node_selector_terms: list[NodeSelectorTerm] = Field(
        description="The terms; a node qualifies when it matches any of them.",
        min_length=1,
        max_length=MAX_TERMS,
    )


class PreferredSchedulingTerm(ApiModel):
    """A node term with a weight: matching nodes are favoured, not required."""

    weight: int = Field(description="How much a match counts, from 1 to 100.", ge=1, le=100)
    preference: NodeSelectorTerm = Field(description="The term a favoured node matches.")


class NodeAffinity(ApiModel):
    """Which nodes the pods may or should run on (in addition to spec.nodeSelector)."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None,
        description="Nodes the pods may be scheduled onto: pods stay Pending while no node "
        "matches. Not re-checked once a pod runs.",
    )
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None,
        description="Nodes the scheduler favours, by the sum of the weights of the terms each matches.",
        max_length=MAX_TERMS,
    )


class PodAffinityTerm(ApiModel):
    """A set of pods (by labels and namespaces) and the topology domain they are counted in."""

    label_selector: LabelSelector | None = Field(
        default=None,
        description="The pods this term is about. Omit it to select no pod. The cluster's own "
        "pods carry app.kubernetes.io/name=velocity and app.kubernetes.io/instance=CLUSTER.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces to look for the pods in, besides namespaces ({} for every "
        "namespace). With neither, the cluster's namespace.",
    )
    namespaces: list[str] | None = Field(
        default=None, description="Names of namespaces to look for the pods in.", max_length=64
    )
    topology_key: str = Field(
        description="The node label whose value defines a domain, for example "
        "kubernetes.io/hostname (one node) or topology.kubernetes.io/zone.",
        min_length=1,
        max_length=317,
        pattern=QUALIFIED_NAME_PATTERN,
    )
    match_label_keys: list[str] | None = Field(
        default=None,
        description="Label keys whose values, read from the incoming pod, are added to "
        "labelSelector (as key In (value)).",
        max_length=16,
    )
    mismatch_label_keys: list[str] | None = Field(
        default=None,
        description="Label keys whose values, read from the incoming pod, are added to "
        "labelSelector as key NotIn (value).",
        max_length=16,
    )


class WeightedPodAffinityTerm(ApiModel):
    """A pod affinity term with a weight: favoured, not required."""

    weight: int = Field(description="How much a match counts, from 1 to 100.", ge=1, le=100)
    pod_affinity_term: PodAffinityTerm = Field(description="The pods and the topology domain the term is about.")


class PodAffinity(ApiModel):
    """Run the pods in the same domain as other pods (for example next to their clients)."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None,
        description="Terms every node the pods are scheduled onto must satisfy.",
        max_length=MAX_TERMS,
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, description="Terms the scheduler favours, by weight.", max_length=MAX_TERMS
    )


class PodAntiAffinity(ApiModel):
    """Keep the pods out of domains where other pods run. Added to the term that
    spec.podAntiAffinity generates (unless that is None)."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None,
        description="Terms every node the pods are scheduled onto must satisfy (pods stay "
        "Pending otherwise).",
        max_length=MAX_TERMS,
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, description="Terms the scheduler favours, by weight.", max_length=MAX_TERMS
    )


class Affinity(ApiModel):
    """A Pod's affinity, as Kubernetes defines it."""

    node_affinity: NodeAffinity | None = Field(
        default=None, description="Which nodes the pods may or should run on."
    )
    pod_affinity: PodAffinity | None = Field(
        default=None, description="Other pods the pods should run near."
    )
    pod_anti_affinity: PodAntiAffinity | None = Field(
        default=None,
        description="Other pods the pods should run away from. Its terms are added to the "
        "one spec.podAntiAffinity generates (one pod per node, Preferred by default); set "
        "spec.podAntiAffinity to None to use only these.",
    )


class TopologySpreadConstraint(ApiModel):
    """Spread the pods evenly over topology domains (zones, nodes)."""

    max_skew: int = Field(
        description="How many more matching pods one domain may have than the least loaded one.",
        ge=1,
    )
    topology_key: str = Field(
        description="The node label whose value defines a domain, for example "
        "topology.kubernetes.io/zone.",
        min_length=1,
        max_length=317,
        pattern=QUALIFIED_NAME_PATTERN,
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule: a pod stays Pending rather than exceed maxSkew. "
        "ScheduleAnyway: the skew is only minimised."
    )
    label_selector: LabelSelector | None = Field(
        default=None,
        description="The pods counted in each domain. Omit it to count the cluster's own pods "
        "(the operator fills in their selector).",
    )
    min_domains: int | None = Field(
        default=None,
        ge=1,
        description="With DoNotSchedule: the number of domains that must exist; fewer count "
        "as domains with zero pods.",
    )
    node_affinity_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None,
        description="Whether the pods' nodeSelector and node affinity limit the domains "
        "counted: Honor (the Kubernetes default) or Ignore.",
    )
    node_taints_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None,
        description="Whether nodes with taints the pods do not tolerate are counted: Ignore "
        "(the Kubernetes default) or Honor.",
    )
    match_label_keys: list[str] | None = Field(
        default=None,
        description="Label keys whose values, read from the incoming pod, narrow "
        "labelSelector.",
        max_length=16,
    )
