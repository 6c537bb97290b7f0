"""kopf handlers: a few lines each, calling the controllers and writing what they return.

Registered on import (kopf's default registry). The shared state (API client, metrics,
settings) lives in the `Runtime` that main() passes to kopf as its memo.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import tlsutil
from .api.crd import BACKUP, CLUSTER, GROUP, VERSION
from .controllers import Action, Settings
from .controllers.backup import FINISHED, reconcile_backup
from .controllers.cluster import reconcile_cluster, refresh_status
from .controllers.restore import BackupNotReadyError
from .controllers.schedule import reconcile_schedule
from .kube import ApiError, Kube, connect
from .metrics import OperatorMetrics, error_reason
from .names import FIELD_MANAGER
from .names import lease as lease_name

__all__ = ["Runtime"]

log = logging.getLogger("velocity_operator")

# Drift correction, certificate rotation and schedules run every CLUSTER_TIMER_S; running
# backup Jobs are polled every BACKUP_TIMER_S. Read once at import (kopf registers timers
# then); tests shorten the resync through the environment.
CLUSTER_TIMER_S = float(os.environ.get("VELOCITY_OPERATOR_RESYNC_SECONDS", "30"))
BACKUP_TIMER_S = 5.0


@dataclass
class Runtime:
    """What every handler needs; one per operator process (kopf memo)."""

    settings: Settings
    metrics: OperatorMetrics
    kubeconfig: str | None = None
    kube: Kube | None = field(default=None, repr=False)
    # (namespace, Lease name) -> last holderIdentity acted on: the engines renew their
    # Lease every second, the operator reacts only when the holder changes.
    lease_holders: dict[tuple[str, str], str] = field(default_factory=dict)

    def api(self) -> Kube:
        if self.kube is None:
            raise RuntimeError("the operator's API client is not connected yet (startup did not run)")
        return self.kube


def _runtime(memo: Any) -> Runtime:
    runtime = memo.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _post(body: Any, actions: list[Action]) -> None:
    for action in actions:
        log.info("%s/%s: %s", body["metadata"]["name"], action.reason, action.message)
        kopf.event(body, type="Warning" if action.warning else "Normal", reason=action.reason,
                   message=action.message)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Progress and diff-base in annotations under vdb.io: status belongs to the schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    runtime = _runtime(memo)
    runtime.kube = await connect(runtime.kubeconfig)


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own credentials: the in-cluster service account, else the kubeconfig
    (--kubeconfig sets KUBECONFIG). Explicit, because kopf's automatic choice depends on
    which client libraries happen to be installed."""
    return (kopf.login_with_service_account(settings=settings, **kwargs)
            or kopf.login_with_kubeconfig(settings=settings, **kwargs))


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    if runtime.kube is not None:
        await runtime.kube.close()


async def _write_cluster_status(runtime: Runtime, body: Any, status: dict[str, Any]) -> None:
    meta = body["metadata"]
    await runtime.api().merge_patch(CLUSTER.api_version, CLUSTER.kind, meta["namespace"], meta["name"],
                                    {"status": status}, subresource="status")
    runtime.metrics.set_phase(meta["namespace"], meta["name"], status.get("phase"))
    runtime.metrics.desired_replicas.labels(meta["name"], meta["namespace"]).set(body["spec"].get("replicas", 1))
    not_after = (status.get("certificate") or {}).get("notAfter")
    if not_after:
        expiry = dt.datetime.fromisoformat(not_after.replace("Z", "+00:00")).timestamp()
        runtime.metrics.certificate_expiry.labels(meta["name"], meta["namespace"]).set(expiry)
    # After an operator restart the last-success gauge comes back from the status.
    runtime.metrics.observe_last_backup(meta["namespace"], meta["name"], status.get("lastBackup"))


async def _reconcile_cluster(body: Any, memo: Any, *, schedule: bool) -> None:
    runtime = _runtime(memo)
    with runtime.metrics.reconciling("VelocityCluster"):
        try:
            result = await reconcile_cluster(runtime.api(), dict(body), runtime.settings, _now())
            if schedule:
                result.status |= await reconcile_schedule(runtime.api(), dict(body), _now(), result.actions,
                                                          default_image=runtime.settings.default_image)
        except BackupNotReadyError as exc:
            kopf.event(body, type="Warning", reason="WaitingForBackup", message=str(exc))
            raise kopf.TemporaryError(str(exc), delay=10) from None
        except (ApiError, tlsutil.CertificateError, LookupError) as exc:
            kopf.event(body, type="Warning", reason="ReconcileFailed", message=str(exc))
            raise kopf.TemporaryError(f"{error_reason(exc)}: {exc}", delay=15) from None
        _post(body, result.actions)
        await _write_cluster_status(runtime, body, result.status)


@kopf.on.create(GROUP, VERSION, CLUSTER.plural)
@kopf.on.update(GROUP, VERSION, CLUSTER.plural)
@kopf.on.resume(GROUP, VERSION, CLUSTER.plural)
async def cluster_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    await _reconcile_cluster(body, memo, schedule=False)


@kopf.timer(GROUP, VERSION, CLUSTER.plural, interval=CLUSTER_TIMER_S, initial_delay=CLUSTER_TIMER_S)
async def cluster_timer(body: kopf.Body, memo: Any, **_: Any) -> None:
    await _reconcile_cluster(body, memo, schedule=True)


@kopf.on.delete(GROUP, VERSION, CLUSTER.plural, optional=True)
async def cluster_deleted(body: kopf.Body, memo: Any, **_: Any) -> None:
    # Owned objects go with the cluster (ownerReferences); only forget its metrics.
    _runtime(memo).metrics.set_phase(body["metadata"]["namespace"], body["metadata"]["name"], None)


@kopf.on.event("apps", "v1", "statefulsets", labels={"app.kubernetes.io/managed-by": FIELD_MANAGER})
async def statefulset_event(body: kopf.Body, memo: Any, **_: Any) -> None:
    """Pods became (un)ready or went away: refresh the owning cluster's status within
    seconds, or take the next scale-down step."""
    owner = next((o for o in body["metadata"].get("ownerReferences", []) if o.get("kind") == CLUSTER.kind), None)
    if owner is None:
        return
    runtime = _runtime(memo)
    namespace = body["metadata"]["namespace"]
    cluster = await runtime.api().get(CLUSTER.api_version, CLUSTER.kind, namespace, owner["name"])
    if cluster is None or cluster["metadata"].get("uid") != owner.get("uid"):
        return
    if body.get("spec", {}).get("replicas") != cluster.get("spec", {}).get("replicas"):
        # Mid scale-down: take the next step as soon as the last pod is gone.
        await _reconcile_cluster(cluster, memo, schedule=False)
        return
    await _refresh_cluster_status(runtime, cluster)


async def _refresh_cluster_status(runtime: Runtime, cluster: dict[str, Any]) -> None:
    """Status (roles, primary, readiness) recomputed from what runs, without reconciling."""
    actions: list[Action] = []
    status = await refresh_status(runtime.api(), cluster, runtime.settings, _now(), actions)
    _post(cluster, actions)
    if status != cluster.get("status"):
        await _write_cluster_status(runtime, cluster, status)


_LEASE_SUFFIX = lease_name("")  # "-primary": Leases named CLUSTER-primary


def _is_cluster_lease(name: str, annotations: kopf.Annotations, **_: Any) -> bool:
    # Cheap filter: the engines' primary Lease carries its epoch; node and controller
    # Leases (renewed every few seconds cluster-wide) are dropped here.
    return name.endswith(_LEASE_SUFFIX) and "vdb.io/epoch" in annotations


@kopf.on.event("coordination.k8s.io", "v1", "leases", when=_is_cluster_lease)
async def lease_event(body: kopf.Body, memo: Any, **_: Any) -> None:
    """The primary Lease changed hands: move the role label (the client Service follows)
    and status.currentPrimary within seconds instead of at the next resync."""
    runtime = _runtime(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    holder = (body.get("spec") or {}).get("holderIdentity") or ""
    if runtime.lease_holders.get((namespace, name)) == holder:
        return
    cluster = await runtime.api().get(CLUSTER.api_version, CLUSTER.kind, namespace,
                                      name.removesuffix(_LEASE_SUFFIX))
    if cluster is None:  # a Lease of no VelocityCluster: nothing to follow
        runtime.lease_holders[(namespace, name)] = holder
        return
    sts = await runtime.api().get("apps/v1", "StatefulSet", namespace, name.removesuffix(_LEASE_SUFFIX))
    if sts is not None and sts["spec"].get("replicas") != (cluster.get("spec") or {}).get("replicas"):
        # Mid scale-down, waiting for the primary to move off a pod that goes: take the step now.
        await _reconcile_cluster(cluster, memo, schedule=False)
    else:
        await _refresh_cluster_status(runtime, cluster)
    runtime.lease_holders[(namespace, name)] = holder


async def _reconcile_backup(body: Any, memo: Any) -> None:
    runtime = _runtime(memo)
    if (body.get("status") or {}).get("phase") in FINISHED:
        return
    with runtime.metrics.reconciling("VelocityBackup"):
        try:
            result = await reconcile_backup(runtime.api(), dict(body), runtime.settings, _now())
        except ApiError as exc:
            kopf.event(body, type="Warning", reason="ReconcileFailed", message=str(exc))
            raise kopf.TemporaryError(f"{exc.reason}: {exc}", delay=10) from None
        _post(body, result.actions)
        meta = body["metadata"]
        await runtime.api().merge_patch(BACKUP.api_version, BACKUP.kind, meta["namespace"], meta["name"],
                                        {"status": result.status}, subresource="status")
        if result.finished:
            runtime.metrics.backup_finished(meta["namespace"], body["spec"]["cluster"], result.status)
        if result.cluster_patch is not None:
            await runtime.api().merge_patch(CLUSTER.api_version, CLUSTER.kind, meta["namespace"],
                                            body["spec"]["cluster"], {"status": result.cluster_patch},
                                            subresource="status")


@kopf.on.create(GROUP, VERSION, BACKUP.plural)
@kopf.on.resume(GROUP, VERSION, BACKUP.plural)
async def backup_created(body: kopf.Body, memo: Any, **_: Any) -> None:
    await _reconcile_backup(body, memo)


def _backup_running(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in FINISHED


@kopf.timer(GROUP, VERSION, BACKUP.plural, interval=BACKUP_TIMER_S, when=_backup_running)
async def backup_timer(body: kopf.Body, memo: Any, **_: Any) -> None:
    await _reconcile_backup(body, memo)
