"""spec.networkPolicy: an optional NetworkPolicy per cluster (issue 11).

The peers mirror Kubernetes' own NetworkPolicyPeer (namespaceSelector, podSelector,
ipBlock) so that what a user writes here reads like what the operator writes into the
NetworkPolicy it owns.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from .common import ApiModel, LabelSelector, LabelSelectorRequirement, cel

__all__ = [
    "DEFAULT_OPERATOR_PEER",
    "DEFAULT_PROMETHEUS_PEER",
    "IPBlock",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NetworkPolicyPeer",
    "NetworkPolicySpec",
]


class IPBlock(ApiModel):
    """A range of IP addresses (for peers outside the pod network, e.g. a node)."""

    cidr: str = Field(description="The range, such as 10.0.0.0/24 or 2001:db8::/64.", min_length=1, max_length=64)
    except_: list[str] | None = Field(
        default=None, alias="except", description="Sub-ranges of cidr that are not allowed."
    )


class NetworkPolicyPeer(ApiModel):
    """Who may connect, as in a NetworkPolicy rule: podSelector alone selects pods of the cluster's namespace, namespaceSelector alone every pod of those namespaces, both the selected pods of the selected namespaces; ipBlock selects addresses."""  # noqa: E501

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.namespaceSelector) || has(self.podSelector) || has(self.ipBlock)",
                    "a peer needs namespaceSelector, podSelector or ipBlock",
                ),
                cel(
                    "!has(self.ipBlock) || (!has(self.namespaceSelector) && !has(self.podSelector))",
                    "ipBlock cannot be combined with namespaceSelector or podSelector",
                ),
            ]
        }
    )

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces the peer pods run in ({} for every namespace)."
    )
    pod_selector: LabelSelector | None = Field(
        default=None, description="Pods that may connect ({} for every pod of the selected namespaces)."
    )
    ip_block: IPBlock | None = Field(default=None, description="Addresses that may connect.")


DEFAULT_OPERATOR_PEER = NetworkPolicyPeer(
    namespace_selector=LabelSelector(match_labels={"kubernetes.io/metadata.name": "velocity-system"}),
    pod_selector=LabelSelector(match_labels={"app.kubernetes.io/name": "velocity-operator"}),
)
DEFAULT_PROMETHEUS_PEER = NetworkPolicyPeer(
    namespace_selector=LabelSelector(match_labels={"kubernetes.io/metadata.name": "monitoring"}),
    pod_selector=LabelSelector(match_labels={"app.kubernetes.io/name": "prometheus"}),
)


class NetworkPolicySpec(ApiModel):
    """The NetworkPolicy CLUSTER: ingress to the engine pods from clients, the cluster's own pods, the operator and Prometheus only (docs/operator/security.md)."""  # noqa: E501

    enabled: bool = Field(
        default=False,
        description="Create the NetworkPolicy CLUSTER (true) or not (false, the default; "
        "one the operator created earlier is deleted).",
    )
    clients: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Who may connect to the client port 2005. Unset: every pod of the "
        "cluster's namespace. The cluster's own pods (replication, switchover, backup Jobs) "
        "and the operator are always allowed; an empty list admits nobody else.",
        max_length=32,
    )
    operator: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Where the operator runs (it asks the primary for a switchover on port "
        "2005). Unset: pods labelled app.kubernetes.io/name=velocity-operator in the "
        "namespace velocity-system (manifests/). An operator run outside the pod network "
        "needs an ipBlock here.",
        max_length=8,
    )
    prometheus: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Who may scrape the metrics port 9105. Unset: pods labelled "
        "app.kubernetes.io/name=prometheus in the namespace monitoring (kube-prometheus). "
        "Health probes come from the kubelet, which network plugins admit regardless.",
        max_length=8,
    )
