"""The StatefulSet that runs the engine pods, with one claim template per volume.

Every pod runs the engine's replication with Lease election (always, even with one pod:
scaling up then adds replicas without restarting the primary, and status/routing work
the same way for every size): it advertises its stable DNS name under the headless
Service, and the engine's Lease agent (as ServiceAccount NAME-engine) elects the primary
through the Lease NAME-primary. Rolling updates are the operator's (OnDelete): one pod at
a time, replicas first and the primary last, each step waiting for every pod's /readyz.
Certificate changes and restart-only config changes reach the pods through hashes in
the pod template's annotations; live config settings (builders/config.py, LIVE_KEYS)
are left out of the config hash and reach running engines through the mounted
ConfigMap, which they watch. Placement (nodeSelector, affinity, tolerations, spread,
priority, pull secrets) and the pods' labels and annotations come from
builders/placement.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.cluster import (
    DEFAULT_LEASE_DURATION_SECONDS,
    DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS,
    ResourceRequirements,
    VelocityClusterSpec,
)
from .config import (
    ADMIN_DIR,
    AUTH_DIR,
    CONFIG_DIR,
    CONFIG_KEY,
    DATA_DIR,
    NOT_DATA,
    REPLICATION_DIR,
    SNAPSHOTS_DIR,
    TLS_DIR,
)
from .meta import Owner, object_meta
from .placement import pod_annotations, pod_labels, pod_placement
from .restore_download import RESTORE_FILE, S3RestoreSource, download_container, s3_restore_of

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "DEFAULT_IMAGE",
    "DEFAULT_RESOURCES",
    "ENGINE_CONTAINER",
    "NODE_ID_CONTAINER",
    "RESTORE_DIR",
    "RUN_AS",
    "TLS_HASH_ANNOTATION",
    "RestoreSource",
    "claim_sizes",
    "lease_timing_args",
    "replication_args",
    "restore_of",
    "restricted_container_security",
    "restricted_pod_security",
    "statefulset",
]

DEFAULT_IMAGE = "velocity/engine:dev"
ENGINE_CONTAINER = "engine"
RUN_AS = 10001  # the "velocity" user of the engine image
CONFIG_HASH_ANNOTATION = "vdb.io/config-hash"
TLS_HASH_ANNOTATION = "vdb.io/tls-hash"
RESTORE_DIR = "/restore"

# Restore only into an empty data directory: the engine refuses --restore-from otherwise,
# and a restarted pod must keep the data it has written since. The snapshots volume's
# mount point, lost+found, generated TLS files and tokens and the node id (config.NOT_DATA)
# do not count as data.
_NOT_DATA_ARGS = "".join(f" -e {name}" for name in NOT_DATA)
_RESTORE_SCRIPT = (
    f'if [ -z "$(ls -A {DATA_DIR} | grep -v -x{_NOT_DATA_ARGS})" ]; '
    'then exec velocity-engine "$@" --restore-from "$VELOCITY_RESTORE_FILE"; fi; '
    'exec velocity-engine "$@"'
)

# The engine names its member Lease after its node id (DATA_DIR/node-id, a random id when
# the file is missing). This init container writes the pod's ordinal there (names.node_id),
# so every Lease an engine touches is known in advance and its Role can list them by name
# (builders/engine_rbac.py). A pod created before this existed gets its ordinal at its next
# restart; its old member Lease simply stops being renewed.
NODE_ID_CONTAINER = "node-id"
_NODE_ID_SCRIPT = (
    'umask 077; id="${VELOCITY_POD_NAME##*-}"; '
    f'if [ "$(cat {DATA_DIR}/node-id 2>/dev/null)" != "$id" ]; then '
    f'printf \'%s\\n\' "$id" > {DATA_DIR}/node-id.tmp && mv {DATA_DIR}/node-id.tmp {DATA_DIR}/node-id; fi'
)


@dataclass(frozen=True)
class RestoreSource:
    """A snapshot file on a PersistentVolumeClaim that new pods start from."""

    claim_name: str
    path: str  # relative to the volume root


DEFAULT_RESOURCES: dict[str, dict[str, Any]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "1Gi"},
}



def restricted_pod_security() -> dict[str, Any]:
    """The pod-level half of the "restricted" Pod Security Standard, for every pod we create."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    """The container-level half: no privilege escalation, read-only root, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }

def _resources(res: ResourceRequirements | None) -> dict[str, Any]:
    if res is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    out: dict[str, Any] = {}
    requests = res.requests if res.requests is not None else DEFAULT_RESOURCES["requests"]
    limits = res.limits if res.limits is not None else DEFAULT_RESOURCES["limits"]
    if requests:
        out["requests"] = {k: str(v) for k, v in requests.items()}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    return out


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "metrics", "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _claim_template(volume: str, size: str, storage_class: str | None,
                    owner: Owner) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": volume, "labels": names.labels(owner.name)},
        "spec": spec,
    }


def claim_sizes(existing: dict[str, Any]) -> dict[str, str]:
    """The storage request of each claim template of an existing StatefulSet."""
    sizes = {}
    for template in existing.get("spec", {}).get("volumeClaimTemplates", []):
        size = template.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        if size is not None:
            sizes[template["metadata"]["name"]] = str(size)
    return sizes


def restore_of(existing: dict[str, Any]) -> RestoreSource | S3RestoreSource | None:
    """The restore source an existing StatefulSet's pods were built with, if any."""
    pod_spec = existing.get("spec", {}).get("template", {}).get("spec", {})
    if (s3 := s3_restore_of(pod_spec)) is not None:
        return s3
    claim = next((v["persistentVolumeClaim"]["claimName"] for v in pod_spec.get("volumes", [])
                  if v.get("name") == "restore" and "persistentVolumeClaim" in v), None)
    env = next((e.get("value", "") for c in pod_spec.get("containers", []) for e in c.get("env", [])
                if e.get("name") == "VELOCITY_RESTORE_FILE"), None)
    if claim is None or env is None:
        return None
    return RestoreSource(claim_name=claim, path=env.removeprefix(f"{RESTORE_DIR}/"))


def node_id_container(spec: VelocityClusterSpec, default_image: str) -> dict[str, Any]:
    """The init container that sets DATA_DIR/node-id to the pod's ordinal."""
    return {
        "name": NODE_ID_CONTAINER,
        "image": spec.image or default_image,
        "imagePullPolicy": spec.image_pull_policy or "IfNotPresent",
        "command": ["/bin/sh", "-c", _NODE_ID_SCRIPT],
        "env": [{"name": "VELOCITY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": names.AOF_VOLUME, "mountPath": DATA_DIR}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": restricted_container_security(),
    }


def lease_timing_args(spec: VelocityClusterSpec) -> list[str]:
    """--lease-duration-s and --lease-renew-s, each only when it differs from the engine's
    default (which the API's defaults equal): a cluster that does not change them keeps
    the pod template it had before they existed, so no pod restarts for nothing."""
    repl = spec.replication
    args: list[str] = []
    if repl.lease_duration_seconds != DEFAULT_LEASE_DURATION_SECONDS:
        args += ["--lease-duration-s", str(repl.lease_duration_seconds)]
    if repl.lease_renew_interval_milliseconds != DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS:
        args += ["--lease-renew-s", f"{repl.lease_renew_interval_milliseconds / 1000:g}"]
    return args


def replication_args(owner: Owner, spec: VelocityClusterSpec) -> list[str]:
    """Engine flags for replication and Lease election. `$(VELOCITY_POD_NAME)` is expanded
    by the kubelet from the container's env, so each pod advertises its own name."""
    pod_name = "$(VELOCITY_POD_NAME)"
    endpoint = f"vdb://{names.pod_dns_name(owner.name, owner.namespace, pod_name)}:{names.CLIENT_PORT}"
    args = [
        "--advertise", endpoint,
        "--lease-name", names.lease(owner.name),
        "--lease-namespace", owner.namespace,
        "--replication-mode", spec.replication.mode,
    ]
    if spec.replication.mode == "sync":
        args += ["--sync-replicas", str(spec.replication.sync_replicas)]
    args += lease_timing_args(spec)
    if spec.tls.enabled:
        # The cluster CA (NAME-tls's ca.crt) signed every pod's certificate, whose SANs
        # cover *.NAME-headless.NS.svc: a replica verifies its primary's advertised name.
        args += ["--replica-ca", f"{TLS_DIR}/ca.crt"]
    return args


def statefulset(
    owner: Owner,
    spec: VelocityClusterSpec,
    *,
    default_image: str = DEFAULT_IMAGE,
    config_hash: str,
    tls_hash: str | None = None,
    fixed_claim_sizes: dict[str, str] | None = None,
    restore: RestoreSource | S3RestoreSource | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The desired StatefulSet.

    `fixed_claim_sizes` are the sizes of an existing StatefulSet's claim templates:
    templates are immutable, so once created they are repeated verbatim (volume growth
    is applied to the PVCs themselves by the controller). `restore` (from
    spec.bootstrap.fromBackup) makes pods with an empty data directory start from a snapshot.
    `replicas` overrides spec.replicas while the operator scales down step by step.
    """
    cluster = owner.name
    sizes = {names.AOF_VOLUME: str(spec.storage.aof.size),
             names.SNAPSHOTS_VOLUME: str(spec.storage.snapshots.size)}
    if fixed_claim_sizes:
        sizes.update(fixed_claim_sizes)

    mounts = [
        {"name": names.AOF_VOLUME, "mountPath": DATA_DIR},
        {"name": names.SNAPSHOTS_VOLUME, "mountPath": SNAPSHOTS_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.config_map(cluster)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if spec.tls.enabled:
        tls_secret = spec.tls.secret_name or names.tls_secret(cluster)
        # One volume per credential (docs/operator/security.md): the client token
        # (NAME-auth), the admin token (NAME-admin) and the replication token
        # (NAME-replication); the config file points the engine at each.
        mounts += [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
            {"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True},
            {"name": "replication", "mountPath": REPLICATION_DIR, "readOnly": True},
        ]
        volumes += [
            {"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o440}},
            {"name": "auth", "secret": {"secretName": names.auth_secret(cluster), "defaultMode": 0o440}},
            {"name": "admin", "secret": {"secretName": names.admin_secret(cluster), "defaultMode": 0o440}},
            {"name": "replication", "secret": {"secretName": names.replication_secret(cluster),
                                               "defaultMode": 0o440}},
        ]

    env: list[dict[str, Any]] = [
        {"name": "VELOCITY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    engine_args = ["--data-dir", DATA_DIR, "--config", f"{CONFIG_DIR}/{CONFIG_KEY}",
                   *replication_args(owner, spec)]
    command = ["velocity-engine"]
    init_containers: list[dict[str, Any]] = [node_id_container(spec, default_image)]
    if isinstance(restore, S3RestoreSource):
        # An init container downloads and verifies the backup (builders/restore_download.py).
        init_containers.append(download_container(
            restore, image=spec.image or default_image, pull_policy=spec.image_pull_policy or "IfNotPresent",
            restore_dir=RESTORE_DIR, data_mount={"name": names.AOF_VOLUME, "mountPath": DATA_DIR},
            security=restricted_container_security()))
        mounts.append({"name": "restore", "mountPath": RESTORE_DIR, "readOnly": True})
        volumes.append({"name": "restore", "emptyDir": {"sizeLimit": str(spec.storage.snapshots.size)}})
        env.append({"name": "VELOCITY_RESTORE_FILE", "value": f"{RESTORE_DIR}/{RESTORE_FILE}"})
        command = ["/bin/sh", "-c", _RESTORE_SCRIPT, "velocity-engine"]
    elif restore is not None:
        mounts.append({"name": "restore", "mountPath": RESTORE_DIR, "readOnly": True})
        volumes.append({"name": "restore", "persistentVolumeClaim": {
            "claimName": restore.claim_name, "readOnly": True}})
        env.append({"name": "VELOCITY_RESTORE_FILE", "value": f"{RESTORE_DIR}/{restore.path}"})
        command = ["/bin/sh", "-c", _RESTORE_SCRIPT, "velocity-engine"]

    hashes = {CONFIG_HASH_ANNOTATION: config_hash}
    if tls_hash is not None:
        hashes[TLS_HASH_ANNOTATION] = tls_hash

    container: dict[str, Any] = {
        "name": ENGINE_CONTAINER,
        "image": spec.image or default_image,
        "imagePullPolicy": spec.image_pull_policy or "IfNotPresent",
        "command": command,
        "args": engine_args,
        "ports": [
            {"name": "vproto", "containerPort": names.CLIENT_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": names.METRICS_PORT, "protocol": "TCP"},
        ],
        "env": env,
        "resources": _resources(spec.resources),
        "volumeMounts": mounts,
        # /healthz proves the event loop runs; /readyz that the engine serves (data loaded).
        "startupProbe": _probe("/healthz", period=2, failures=150),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=2, failures=2),
        "securityContext": restricted_container_security(),
    }
    pod_spec: dict[str, Any] = {
        "initContainers": init_containers,
        "containers": [container],
        "volumes": volumes,
        # The engine's Lease agent talks to the API server as NAME-engine (leases only).
        "serviceAccountName": names.engine_service_account(cluster),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {**restricted_pod_security(), "fsGroupChangePolicy": "OnRootMismatch"},
    }
    # spec.nodeSelector, spec.podAntiAffinity and spec.podTemplate (builders/placement.py).
    pod_spec.update(pod_placement(spec, cluster))

    retention = spec.storage.claim_retention
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(owner, names.statefulset(cluster)),
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "serviceName": names.headless_service(cluster),
            # Parallel: pods start together and the Lease elects the primary (no ordering
            # needed); rolling updates go one pod at a time, driven by the operator.
            "podManagementPolicy": "Parallel",
            # OnDelete: the operator restarts outdated pods itself, replicas first and the
            # primary (the Lease holder, any ordinal) last (controllers/rollout.py).
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {
                "whenScaled": retention.when_scaled,
                "whenDeleted": retention.when_deleted,
            },
            "selector": {"matchLabels": names.selector(cluster)},
            "template": {
                # component=engine: what the monitoring overlay's PodMonitor selects.
                "metadata": {"labels": pod_labels(cluster, spec), "annotations": pod_annotations(spec, hashes)},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [
                _claim_template(names.AOF_VOLUME, sizes[names.AOF_VOLUME],
                                spec.storage.storage_class_name, owner),
                _claim_template(names.SNAPSHOTS_VOLUME, sizes[names.SNAPSHOTS_VOLUME],
                                spec.storage.storage_class_name, owner),
            ],
        },
    }
