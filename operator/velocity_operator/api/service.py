"""spec.service: the type and annotations of the client Service CLUSTER (issue 17).

Only the client Service (the one that routes to the primary) is configurable; the
headless Service CLUSTER-headless stays ClusterIP None, for pod DNS and replication.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import ApiModel
from .pod_template import MAX_METADATA_ENTRIES, annotations_rules

__all__ = ["ClientServiceSpec", "ServiceType"]

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


class ClientServiceSpec(ApiModel):
    """How the client Service CLUSTER is exposed."""

    type: ServiceType = Field(
        default="ClusterIP",
        description="ClusterIP (default): reachable inside the Kubernetes cluster only. "
        "NodePort: also on a port of every node. LoadBalancer: also through the cloud's load "
        "balancer (configure it with annotations). NodePort and LoadBalancer publish the "
        "client port 2005 only, not the unauthenticated metrics port 9105. Clients outside "
        "the cluster must verify the server certificate against a name it carries (the "
        "Service's DNS names; see docs/operator/certificates.md).",
    )
    annotations: dict[str, str] | None = Field(
        default=None,
        description="Annotations of the client Service, for example a cloud load balancer's "
        "settings (service.beta.kubernetes.io/aws-load-balancer-internal: \"true\"). vdb.io/ "
        "keys are refused. Removing one here removes it from the Service.",
        max_length=MAX_METADATA_ENTRIES,
        json_schema_extra={"x-kubernetes-validations": annotations_rules("service.annotations")},
    )
