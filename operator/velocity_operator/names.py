"""Names and labels of everything the operator creates for a VelocityCluster.

The object names are a contract with users and SDKs (issue 6): Service `NAME`, headless
Service `NAME-headless`, Secrets `NAME-auth` (key `token`), `NAME-ca` (key `ca.crt`) and
`NAME-tls`; the admin and replication credentials `NAME-admin` and `NAME-replication`
(key `token`, issue 11). Everything else here is the operator's own choice.
"""

from __future__ import annotations

__all__ = [
    "AOF_VOLUME",
    "CLIENT_PORT",
    "FIELD_MANAGER",
    "GROUP",
    "METRICS_PORT",
    "ROLE_LABEL",
    "SNAPSHOTS_VOLUME",
    "admin_secret",
    "auth_secret",
    "backup_job",
    "backups_claim",
    "ca_key_secret",
    "ca_secret",
    "claim",
    "config_map",
    "engine_role",
    "engine_service_account",
    "headless_service",
    "labels",
    "lease",
    "member_lease",
    "network_policy",
    "node_id",
    "pod",
    "pod_dns_name",
    "pod_dns_names",
    "pod_of_endpoint",
    "replication_secret",
    "selector",
    "selector_string",
    "service",
    "service_dns_names",
    "statefulset",
    "tls_secret",
]

GROUP = "vdb.io"
FIELD_MANAGER = "velocity-operator"
CLIENT_PORT = 2005
METRICS_PORT = 9105
AOF_VOLUME = "aof"
SNAPSHOTS_VOLUME = "snapshots"
CLUSTER_DOMAIN = "cluster.local"
# On the pods: "primary" on the holder of the cluster's Lease, "replica" on the others.
# The client Service selects role=primary; the operator moves the label when the Lease moves.
ROLE_LABEL = "vdb.io/role"


def service(cluster: str) -> str:
    return cluster


def headless_service(cluster: str) -> str:
    return f"{cluster}-headless"


def statefulset(cluster: str) -> str:
    return cluster


def auth_secret(cluster: str) -> str:
    return f"{cluster}-auth"


def admin_secret(cluster: str) -> str:
    """The admin token (key `token`): PROMOTE, REPLICA_OF, switchover, snapshots. Mounted
    by the engines, the backup Jobs and read by the operator; never given to clients."""
    return f"{cluster}-admin"


def replication_secret(cluster: str) -> str:
    """The replication token (key `token`): what a replica presents to its primary."""
    return f"{cluster}-replication"


def ca_secret(cluster: str) -> str:
    """The CA certificate clients trust (key ca.crt); holds no private key."""
    return f"{cluster}-ca"


def ca_key_secret(cluster: str) -> str:
    """The CA's private key: kept apart from NAME-ca so that reading the trust anchor
    never grants the power to mint server certificates."""
    return f"{cluster}-ca-key"


def tls_secret(cluster: str) -> str:
    return f"{cluster}-tls"


def lease(cluster: str) -> str:
    """The coordination.k8s.io/v1 Lease whose holder is the primary (written by the engines)."""
    return f"{cluster}-primary"


def node_id(ordinal: int) -> str:
    """The engine node id of pod ordinal `ordinal` (written to DATA_DIR/node-id by the pod's
    init container): known in advance, so the engines' Role can name their member Leases."""
    return str(ordinal)


def member_lease(cluster: str, node: str) -> str:
    """A node's member Lease (position and liveness), named by the engine's Lease agent
    LEASE-member-NODE_ID (engine/velocity_engine/replication/lease.py)."""
    return f"{lease(cluster)}-member-{node}"


def network_policy(cluster: str) -> str:
    return cluster


def engine_service_account(cluster: str) -> str:
    """The engine pods' ServiceAccount: the Lease agent inside the engine acts as it."""
    return f"{cluster}-engine"


def engine_role(cluster: str) -> str:
    return f"{cluster}-engine"


def config_map(cluster: str) -> str:
    return f"{cluster}-config"


def backups_claim(cluster: str) -> str:
    return f"{cluster}-backups"


def backup_job(backup: str) -> str:
    return f"{backup}-snapshot"


def pod(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}"


def claim(volume: str, cluster: str, ordinal: int) -> str:
    """The PVC the StatefulSet controller creates from a volume claim template."""
    return f"{volume}-{cluster}-{ordinal}"


def labels(cluster: str) -> dict[str, str]:
    """Labels on every object of the cluster."""
    return {
        **selector(cluster),
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/part-of": "velocity",
    }


def selector(cluster: str) -> dict[str, str]:
    """Labels that select the cluster's pods (immutable in a StatefulSet: never change)."""
    return {"app.kubernetes.io/name": "velocity", "app.kubernetes.io/instance": cluster}


def selector_string(cluster: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(cluster).items())


def service_dns_names(cluster: str, namespace: str) -> list[str]:
    """Every name a client may use for the client and headless Services."""
    names = []
    for svc in (service(cluster), headless_service(cluster)):
        names += [svc, f"{svc}.{namespace}", f"{svc}.{namespace}.svc",
                  f"{svc}.{namespace}.svc.{CLUSTER_DOMAIN}"]
    return names


def pod_dns_names(cluster: str, namespace: str) -> list[str]:
    """Wildcards covering each pod's stable name under the headless Service."""
    headless = headless_service(cluster)
    return [f"*.{headless}.{namespace}.svc", f"*.{headless}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def pod_dns_name(cluster: str, namespace: str, pod_name: str) -> str:
    """A pod's stable name under the headless Service (covered by the server certificate)."""
    return f"{pod_name}.{headless_service(cluster)}.{namespace}.svc"


def pod_of_endpoint(cluster: str, namespace: str, endpoint: str) -> str | None:
    """The pod an engine endpoint `vdb://POD.HEADLESS.NS.svc:PORT` (a Lease holderIdentity)
    names, or None for an endpoint that is not one of this cluster's pods."""
    host = endpoint.removeprefix("vdb://").rsplit(":", 1)[0]
    pod_name, _, rest = host.partition(".")
    if rest.removesuffix(f".{CLUSTER_DOMAIN}") != f"{headless_service(cluster)}.{namespace}.svc":
        return None
    if not pod_name.startswith(f"{cluster}-") or not pod_name.removeprefix(f"{cluster}-").isdigit():
        return None
    return pod_name
