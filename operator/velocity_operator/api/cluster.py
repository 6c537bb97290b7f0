"""VelocityCluster (short name vc): a Velocity deployment with storage, TLS and backups."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, Condition, Quantity, cel
from .destination import DNS_SUBDOMAIN_PATTERN, BackupDestination
from .network import NetworkPolicySpec
from .pod_template import PodTemplate
from .service import ClientServiceSpec

__all__ = [
    "DEFAULT_LEASE_DURATION_SECONDS",
    "DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS",
    "MAX_REPLICAS",
    "BackupSpec",
    "BootstrapSpec",
    "CertManagerSpec",
    "CertificateStatus",
    "ClaimRetentionPolicy",
    "ClusterPhase",
    "CredentialsStatus",
    "EngineConfig",
    "FromBackup",
    "IssuerRef",
    "LastBackupStatus",
    "ReplicationSpec",
    "ResourceRequirements",
    "StorageSpec",
    "TLSSpec",
    "VelocityClusterSpec",
    "VelocityClusterStatus",
    "VolumeSpec",
]

MAX_REPLICAS = 16
# The engine's own defaults (EngineSettings.lease_duration_s / lease_renew_s; a unit test
# checks they agree): a cluster that leaves them unchanged runs the engine without flags.
DEFAULT_LEASE_DURATION_SECONDS = 5
DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS = 1000
# The primary stops taking writes when it has not renewed its Lease for
# duration - 2 x interval, and renews every interval (plus the round's API latency):
# duration >= 5 x interval leaves a fencing deadline of at least 3 intervals, so one
# failed renewal round does not stop writes.
LEASE_INTERVALS_PER_DURATION = 5

# Five cron fields, or one of the @ shortcuts CronJob understands.
CRON_RULE = (
    r"self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    r"[0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+)$')"
)


class VolumeSpec(ApiModel):
    """Size of one of the persistent volumes each pod gets."""

    size: Quantity = Field(
        default="1Gi",
        description="Requested size of the volume, for example 1Gi. It can grow (when the "
        "StorageClass allows expansion) but never shrink: a smaller value is refused in "
        "status and the volume keeps its size.",
    )


class ClaimRetentionPolicy(ApiModel):
    """What happens to the pods' PersistentVolumeClaims when pods go away."""

    when_scaled: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain (default) keeps the claims of pods removed by scaling down, so "
        "scaling up again finds their data; Delete removes them.",
    )
    when_deleted: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain (default) keeps the claims when the VelocityCluster is deleted; "
        "Delete removes them with it.",
    )


class StorageSpec(ApiModel):
    """Persistent storage: one volume for the append-only log, one for snapshots."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.storageClassName) == has(oldSelf.storageClassName) && "
                    "(!has(self.storageClassName) || "
                    "self.storageClassName == oldSelf.storageClassName)",
                    "storage.storageClassName is immutable: create a new cluster (for example "
                    "restored from a backup) to move to another StorageClass",
                    reason="FieldValueForbidden",
                )
            ]
        }
    )

    storage_class_name: str | None = Field(
        default=None,
        description="StorageClass of both volumes. Omit it to use the cluster's default "
        "StorageClass. Immutable after creation.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    aof: VolumeSpec = Field(
        default_factory=lambda: VolumeSpec(),
        description="The volume holding the append-only log (the write path), mounted at "
        "/data. Defaults to 1Gi.",
        json_schema_extra={"default": {}},
    )
    snapshots: VolumeSpec = Field(
        default_factory=lambda: VolumeSpec(),
        description="The volume holding snapshots of the data set, mounted at "
        "/data/snapshots. Defaults to 1Gi.",
        json_schema_extra={"default": {}},
    )
    claim_retention: ClaimRetentionPolicy = Field(
        default_factory=lambda: ClaimRetentionPolicy(),
        description="Whether the pods' PersistentVolumeClaims are kept when scaling down or "
        "deleting the cluster. Both default to Retain.",
        json_schema_extra={"default": {}},
    )


class IssuerRef(ApiModel):
    """A cert-manager Issuer or ClusterIssuer."""

    name: str = Field(description="Name of the issuer.", min_length=1, max_length=253)
    kind: Literal["Issuer", "ClusterIssuer"] = Field(
        default="Issuer", description="Issuer (in the cluster's namespace) or ClusterIssuer."
    )
    group: str = Field(
        default="cert-manager.io", description="API group of the issuer.", max_length=253
    )


class CertManagerSpec(ApiModel):
    """Have cert-manager issue the server certificate instead of the operator."""

    issuer_ref: IssuerRef = Field(
        description="The issuer that signs the server certificate. Its CA must be included "
        "as ca.crt in the issued Secret (true for CA and self-signed issuers)."
    )


class TLSSpec(ApiModel):
    """Transport security of client connections."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.enabled || (!has(self.secretName) && !has(self.certManager))",
                    "tls.secretName and tls.certManager need tls.enabled: true",
                ),
                cel(
                    "!(has(self.secretName) && has(self.certManager))",
                    "set at most one of tls.secretName and tls.certManager",
                ),
            ]
        }
    )

    enabled: bool = Field(
        default=True,
        description="Serve TLS 1.3 and require the auth token (default true). false serves "
        "plaintext without authentication: only for local experiments.",
    )
    secret_name: str | None = Field(
        default=None,
        description="Bring your own certificate: a kubernetes.io/tls Secret in the same "
        "namespace with tls.crt, tls.key and ca.crt. Its SANs must cover the Service and "
        "pod names (see docs/operator/certificates.md). Omit to let the operator issue and "
        "rotate certificates from its own CA.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    cert_manager: CertManagerSpec | None = Field(
        default=None,
        description="Have cert-manager issue and renew the server certificate into the Secret "
        "CLUSTER-tls (requires cert-manager; its ca.crt is copied to CLUSTER-ca).",
    )


class ResourceRequirements(ApiModel):
    """Compute resources of the engine container, as in a Pod's resources field."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, for example "
        "{cpu: 100m, memory: 256Mi}. Defaults to cpu 100m and memory 128Mi.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources the container may use, for example {memory: 1Gi}. "
        "Defaults to memory 1Gi and no CPU limit.",
    )


class EngineConfig(ApiModel):
    """Engine settings written to the pods' config file (ConfigMap NAME-config).

    logLevel, maxConnections and appendfsync are applied by the running engines once kubelet
    has updated the mounted file (no restart); changing maxValueBytes or dataPlane rolls the pods.
    """

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        default=None,
        description="Log verbosity of the engine. Defaults to INFO. Applied live: the engines "
        "reload it from their mounted config file, without a restart.",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Client connections per pod beyond which new ones get a BUSY error. "
        "Defaults to 10000. Applied live, without a restart; lowering it closes no open "
        "connection, it only refuses new ones.",
    )
    max_value_bytes: int | None = Field(
        default=None,
        ge=1,
        le=512 * 1024 * 1024,
        description="Largest value a client may store, in bytes. Defaults to 8 MiB. "
        "Changing it restarts the pods one at a time (clients learn the limit when they connect).",
    )
    appendfsync: Literal["always", "everysec", "no"] | None = Field(
        default=None,
        description="When the write-ahead log is synced to disk: always (before each reply), "
        "everysec (at most one second of writes lost on a crash) or no (left to the OS). "
        "Defaults to everysec. Applied live, without a restart: after the switch to always, "
        "no write is acknowledged before it is synced.",
    )
    data_plane: Literal["native", "python"] | None = Field(
        default=None,
        description="The engine's data plane: native (the Rust core, the default of the engine "
        "image) or python (the previous one, kept for one release as a fallback). Changing it "
        "restarts the pods one at a time, replicas first; only python to native is allowed, "
        "because the Python plane cannot open a directory the native one wrote (to go back, "
        "restore a backup into a new cluster).",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self == oldSelf || oldSelf == 'python'",
                    "config.dataPlane can only change from python to native: the Python data "
                    "plane cannot open a directory the native one wrote",
                    reason="FieldValueForbidden",
                )
            ]
        },
    )


class BackupSpec(ApiModel):
    """Scheduled backups of the cluster, each one a VelocityBackup owned by the cluster."""

    schedule: str = Field(
        description="When to take a backup, as a cron expression in UTC with five fields "
        "(minute hour day-of-month month day-of-week), for example \"0 * * * *\" for "
        "hourly, or @hourly, @daily, @weekly, @monthly, @yearly.",
        min_length=1,
        max_length=128,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    CRON_RULE,
                    "backup.schedule must be a cron expression with five fields such as "
                    "\"0 * * * *\", or one of @hourly, @daily, @weekly, @monthly, @yearly",
                )
            ]
        },
    )
    retention: int = Field(
        default=7,
        ge=1,
        le=1000,
        description="How many completed scheduled backups to keep; older ones are deleted "
        "with their files. Defaults to 7. Backups created by hand are never deleted.",
    )
    suspend: bool = Field(
        default=False, description="Stop taking scheduled backups while true; existing ones stay."
    )
    destination: BackupDestination | None = Field(
        default=None,
        description="Where scheduled backups are stored. Defaults to a PersistentVolumeClaim "
        "named CLUSTER-backups that the operator creates with size backup.volumeSize.",
    )
    volume_size: Quantity = Field(
        default="5Gi",
        description="Size of the CLUSTER-backups claim created when no destination is "
        "given. Defaults to 5Gi.",
    )


class FromBackup(ApiModel):
    """A completed VelocityBackup to restore from."""

    name: str = Field(
        description="Name of a VelocityBackup in the same namespace whose phase is Completed.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )


class BootstrapSpec(ApiModel):
    """How a new cluster gets its initial data. Only settable at creation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self == oldSelf", "spec.bootstrap is immutable", reason="FieldValueForbidden")
            ]
        }
    )

    from_backup: FromBackup = Field(
        description="Start every pod from the snapshot of this backup instead of empty."
    )


class ReplicationSpec(ApiModel):
    """How the primary replicates writes to the other pods (engine replication, issue 5),
    and the timing of the Lease that elects the primary (issue 17)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    # has(): the default {} of spec.replication is checked as written.
                    f"(has(self.leaseDurationSeconds) ? self.leaseDurationSeconds : "
                    f"{DEFAULT_LEASE_DURATION_SECONDS}) * 1000 >= {LEASE_INTERVALS_PER_DURATION} * "
                    f"(has(self.leaseRenewIntervalMilliseconds) ? self.leaseRenewIntervalMilliseconds : "
                    f"{DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS})",
                    "replication.leaseRenewIntervalMilliseconds must be at most a fifth of "
                    "replication.leaseDurationSeconds: the primary stops writes after "
                    "leaseDurationSeconds minus two intervals without a renewal, which must leave "
                    "room for a failed renewal",
                    reason="FieldValueInvalid",
                )
            ]
        }
    )

    mode: Literal["async", "sync"] = Field(
        default="async",
        description="async (default): a write is acknowledged once the primary has it; a "
        "failover can lose the last writes not yet streamed. sync: a write is acknowledged "
        "once syncReplicas replicas also have it durably; the primary refuses writes "
        "(NOT_ENOUGH_REPLICAS) while fewer replicas are connected.",
    )
    sync_replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS - 1,
        description="sync mode: how many replicas must acknowledge each write. Must be "
        "below spec.replicas. Ignored in async mode. Defaults to 1.",
    )
    lease_duration_seconds: int = Field(
        default=DEFAULT_LEASE_DURATION_SECONDS,
        ge=3,
        le=300,
        description="How long the Lease CLUSTER-primary lasts without a renewal, in seconds "
        "(3-300, default 5). When the primary's node is lost, a replica takes over "
        "leaseDurationSeconds to leaseDurationSeconds plus two renew intervals later; the "
        "primary itself stops taking "
        "writes leaseDurationSeconds minus two renew intervals after its last renewal. "
        "Shorter fails over faster but fences a primary sooner when the API server is slow, "
        "and tolerates less clock skew between nodes (docs/operator/replication.md). "
        "Changing it rolls the pods.",
    )
    lease_renew_interval_milliseconds: int = Field(
        default=DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS,
        ge=250,
        le=60_000,
        description="How often each pod renews (the primary) or checks (the replicas) the "
        "Lease and publishes its log position, in milliseconds (250-60000, default 1000). At "
        "most a fifth of leaseDurationSeconds. Each pod makes about three API requests per "
        "interval. Changing it rolls the pods.",
    )


# Sync mode with as many required acknowledgements as there are replicas (or more) would
# refuse every write as soon as one replica restarts, and always with replicas = 1.
SYNC_REPLICAS_RULE = (
    "!has(self.replication) || !has(self.replication.mode) || self.replication.mode != 'sync' || "
    "(has(self.replication.syncReplicas) ? self.replication.syncReplicas : 1) < "
    "(has(self.replicas) ? self.replicas : 1)"
)


class VelocityClusterSpec(ApiModel):
    """The desired state of a Velocity cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.bootstrap) == has(oldSelf.bootstrap)",
                    "spec.bootstrap can only be set when the cluster is created",
                    reason="FieldValueForbidden",
                ),
                cel(
                    SYNC_REPLICAS_RULE,
                    "spec.replication.syncReplicas must be below spec.replicas in sync mode "
                    "(the primary needs that many other pods to acknowledge a write)",
                    reason="FieldValueInvalid",
                ),
            ]
        }
    )

    replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS,
        description="Number of pods. One of them is the primary, elected through the Lease "
        "CLUSTER-primary (see status.currentPrimary); the others replicate it and take over "
        "when it is lost. Scaling down removes the highest-numbered pods one at a time; when "
        "the next pod to go is the primary, the operator first hands the primary role to a "
        "pod that stays (planned switchover). "
        "Defaults to 1.",
    )
    image: str | None = Field(
        default=None,
        description="Container image of the engine. Defaults to the image the operator was "
        "configured with (velocity/engine:dev). Changing it rolls the pods one at a time, "
        "the primary last.",
        min_length=1,
        max_length=512,
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None,
        description="When the kubelet pulls the image. Defaults to IfNotPresent.",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="CPU and memory of the engine container. Defaults to requests "
        "{cpu: 100m, memory: 128Mi} and limits {memory: 1Gi}.",
    )
    storage: StorageSpec = Field(
        default_factory=lambda: StorageSpec(),
        description="Persistent volumes of each pod: the append-only log and snapshots.",
        json_schema_extra={"default": {}},
    )
    tls: TLSSpec = Field(
        default_factory=lambda: TLSSpec(),
        description="TLS of client connections. Enabled by default with certificates from a "
        "CA the operator creates; clients trust the ca.crt of the Secret CLUSTER-ca.",
        json_schema_extra={"default": {}},
    )
    config: EngineConfig | None = Field(
        default=None, description="Engine settings. Unset ones keep the engine's defaults."
    )
    pod_anti_affinity: Literal["Preferred", "Required", "None"] = Field(
        default="Preferred",
        description="Spread pods over nodes: Preferred (default) when possible, Required "
        "always (pods stay Pending without enough nodes), None not at all. The terms of "
        "podTemplate.affinity.podAntiAffinity are added to this one.",
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Labels a node must have for the pods to be scheduled on it. Applies "
        "together with podTemplate.affinity.nodeAffinity (both must hold).",
    )
    pod_template: PodTemplate | None = Field(
        default=None,
        description="Placement and metadata of the engine pods: tolerations, affinity, "
        "topologySpreadConstraints, priorityClassName, imagePullSecrets, labels and "
        "annotations. Changing it rolls the pods, replicas first and the primary last. "
        "Default: none of these.",
    )
    service: ClientServiceSpec = Field(
        default_factory=lambda: ClientServiceSpec(),
        description="Type and annotations of the client Service CLUSTER. Defaults to "
        "ClusterIP without annotations.",
        json_schema_extra={"default": {}},
    )
    backup: BackupSpec | None = Field(
        default=None, description="Scheduled backups. Omit for none; VelocityBackups work regardless."
    )
    bootstrap: BootstrapSpec | None = Field(
        default=None,
        description="Restore a new cluster from a backup. Only settable when the cluster is "
        "created.",
    )
    replication: ReplicationSpec = Field(
        default_factory=lambda: ReplicationSpec(),
        description="Replication from the primary to the other pods (async by default, or "
        "sync) and the timing of the Lease that elects the primary.",
        json_schema_extra={"default": {}},
    )
    network_policy: NetworkPolicySpec = Field(
        default_factory=lambda: NetworkPolicySpec(),
        description="An optional NetworkPolicy admitting only clients, the cluster's own "
        "pods, the operator and Prometheus (off by default; needs a network plugin that "
        "enforces NetworkPolicy).",
        json_schema_extra={"default": {}},
    )


ClusterPhase = Literal["Pending", "Provisioning", "Ready", "Scaling", "Updating", "Degraded"]


class CertificateStatus(ApiModel):
    """The server certificate in use."""

    secret_name: str = Field(description="Secret holding the server certificate.")
    not_after: dt.datetime | None = Field(
        default=None, description="When the server certificate expires."
    )
    renew_after: dt.datetime | None = Field(
        default=None, description="When the operator will replace it (operator-issued only)."
    )


class CredentialsStatus(ApiModel):
    """Where the cluster's credentials live: Secrets in its namespace, each token under
    the key `token` (docs/operator/security.md). Unset while spec.tls.enabled is false."""

    client_secret: str = Field(description="The client token (data commands): what applications mount.")
    admin_secret: str = Field(
        description="The admin token (PROMOTE, REPLICA_OF, switchover, snapshots): used by the "
        "engines, the operator, backup Jobs and velocityctl's admin commands."
    )
    replication_secret: str = Field(description="The replication token, used by the engines only.")
    ca_secret: str = Field(description="The CA certificate clients trust (key ca.crt).")


class LastBackupStatus(ApiModel):
    """The most recent backup of this cluster that finished."""

    name: str = Field(description="Name of the VelocityBackup.")
    phase: str = Field(description="Completed or Failed.")
    completion_time: dt.datetime | None = Field(default=None, description="When it finished.")
    location: str | None = Field(default=None, description="Where the snapshot file was stored.")


class VelocityClusterStatus(ApiModel):
    """The observed state of a Velocity cluster, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    phase: ClusterPhase | None = Field(
        default=None,
        description="A one-word summary: Pending, Provisioning, Ready, Scaling, Updating or "
        "Degraded. Use the conditions for decisions.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready (all pods serve), Progressing (a change is being rolled out), "
        "Degraded (something needs attention; see its reason) and BackupSucceeded (the "
        "latest backup finished).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, description="Number of pods that exist.")
    ready_replicas: int | None = Field(default=None, description="Number of pods that are ready.")
    updated_replicas: int | None = Field(
        default=None, description="Number of pods running the current spec."
    )
    selector: str | None = Field(
        default=None, description="Label selector of the pods, for the scale subresource."
    )
    current_primary: str | None = Field(
        default=None,
        description="The pod that accepts writes: the holder of the Lease CLUSTER-primary "
        "(carries the label vdb.io/role=primary, which the client Service selects). Unset "
        "until a pod has taken the Lease.",
    )
    image: str | None = Field(default=None, description="The engine image the pods are set to run.")
    certificate: CertificateStatus | None = Field(
        default=None, description="The server certificate in use and its expiry."
    )
    credentials: CredentialsStatus | None = Field(
        default=None, description="The Secrets holding the client, admin and replication tokens and the CA."
    )
    last_backup: LastBackupStatus | None = Field(
        default=None, description="The most recent backup that finished."
    )
    last_scheduled_backup_time: dt.datetime | None = Field(
        default=None, description="When the schedule last created a VelocityBackup."
    )
