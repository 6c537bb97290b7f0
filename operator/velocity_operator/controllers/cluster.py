"""Reconcile one VelocityCluster: secrets, config, Services, PDB, StatefulSet, then status.

Every write is a server-side apply of the full desired object (idempotent: re-running
changes nothing), except create-once objects (token, CA) which are only created when
missing. Called on create, update, resume and by a timer, so drift is corrected within
one timer interval and an operator restart converges from whatever state it finds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .. import names
from ..api.cluster import VelocityClusterSpec
from ..builders import config as config_builder
from ..builders import engine_rbac
from ..builders import network_policy as network_policy_builder
from ..builders import pdb as pdb_builder
from ..builders import services as service_builder
from ..builders import statefulset as sts_builder
from ..builders.meta import Owner
from ..builders.status import Problem, cluster_status, latest_finished_backup
from ..conditions import Reason
from ..kube import Kube
from .actions import Action, Settings
from .primary import label_roles, read_primary
from .promote import switchover_on_request
from .restore import restore_source
from .rollout import rollout_step
from .scaling import sync_tolerance_warning
from .storage import reconcile_storage
from .switchover import scale_replicas
from .tls import ensure_tls, ensure_tokens

__all__ = [
    "ClusterResult",
    "ensure_engine_identity",
    "owner_of",
    "reconcile_cluster",
    "reconcile_network_policy",
    "refresh_status",
]


@dataclass
class ClusterResult:
    status: dict[str, Any]
    actions: list[Action] = field(default_factory=list)


def owner_of(body: dict[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


async def reconcile_cluster(kube: Kube, body: dict[str, Any], settings: Settings,
                            now: dt.datetime) -> ClusterResult:
    """Bring the cluster's objects to the spec of `body`; returns the status to write."""
    spec = VelocityClusterSpec.model_validate(body.get("spec") or {})
    owner = owner_of(body)
    actions: list[Action] = []
    problems: list[Problem] = []

    if spec.tls.enabled:
        await ensure_tokens(kube, owner, actions)
    tls = await ensure_tls(kube, owner, spec, now, actions)
    problems += tls.problems

    config_map = config_builder.config_map(owner, spec)
    await kube.apply(config_map)
    await kube.apply(service_builder.client_service(owner, spec.service))
    await kube.apply(service_builder.headless_service(owner))
    await kube.apply(pdb_builder.pod_disruption_budget(owner))
    await reconcile_network_policy(kube, owner, spec, actions)

    existing = await kube.get("apps/v1", "StatefulSet", owner.namespace, names.statefulset(owner.name))
    # The engines' Lease agents act as NAME-engine: it and their Leases must exist before the pods do.
    pods_at_most = max(spec.replicas, int((existing or {}).get("spec", {}).get("replicas", 0)))
    await ensure_engine_identity(kube, owner, pods_at_most, actions)
    fixed_sizes = sts_builder.claim_sizes(existing) if existing else {}
    if existing is not None:
        pods = max(int(existing.get("status", {}).get("replicas", 0)), int(existing["spec"]["replicas"]))
        problems += await reconcile_storage(kube, owner, spec, fixed_sizes, pods, actions)

    restore = None
    if spec.bootstrap is not None:
        # Once the pods run, keep the source they were created with (the backup may be
        # deleted later; changing the template would only roll the pods for nothing).
        restore = sts_builder.restore_of(existing) if existing else None
        if restore is None:
            restore = await restore_source(kube, owner.namespace, spec)
    # Before the StatefulSet is applied: a step down that would remove the primary is
    # preceded by a switchover (controllers/switchover.py), or postponed.
    replicas = await scale_replicas(kube, owner, spec, existing, actions)
    desired = sts_builder.statefulset(
        owner, spec, default_image=settings.default_image,
        config_hash=config_builder.config_hash(config_map), tls_hash=tls.tls_hash,
        fixed_claim_sizes=fixed_sizes, restore=restore,
        replicas=replicas,
    )
    _describe_changes(existing, desired, actions)
    applied = await kube.apply(desired)
    primary = await read_primary(kube, owner)
    primary = await switchover_on_request(kube, owner, spec, body, primary, actions)  # vdb.io/switchover-to
    await label_roles(kube, owner, primary, actions)
    await rollout_step(kube, owner, applied, primary, actions)

    generation = int(body["metadata"].get("generation", 1))
    warning = sync_tolerance_warning(spec)
    # Once per spec generation, not at every resync: it is about the spec, not an event.
    if warning is not None and (body.get("status") or {}).get("observedGeneration") != generation:
        actions.append(Action("SyncNoFaultTolerance", warning, warning=True))
    for problem in problems:
        actions.append(Action(problem.reason, problem.message, warning=True))
    # The last backup is read from the VelocityBackups themselves, not from the (possibly
    # stale) status in `body`, so a concurrent status write by the backup handler is not undone.
    backups = await kube.list("vdb.io/v1alpha1", "VelocityBackup", owner.namespace)
    status = cluster_status(
        cluster=owner.name, spec=spec, generation=generation,
        statefulset=applied, previous=dict(body.get("status") or {}), now=now,
        image=spec.image or settings.default_image, problems=problems, certificate=tls.certificate,
        last_backup=latest_finished_backup(backups, owner.name), primary=primary,
    )
    return ClusterResult(status, actions)


async def refresh_status(kube: Kube, body: dict[str, Any], settings: Settings,
                         now: dt.datetime, actions: list[Action] | None = None) -> dict[str, Any]:
    """Status from the StatefulSet and the Lease as they are now, writing nothing but the
    pods' role labels and the next rollout step (used when the StatefulSet reports
    progress or the Lease changes hands, so Ready, a new primary and the next pod of a
    rolling update follow within seconds)."""
    spec = VelocityClusterSpec.model_validate(body.get("spec") or {})
    owner = owner_of(body)
    previous = dict(body.get("status") or {})
    sts = await kube.get("apps/v1", "StatefulSet", owner.namespace, names.statefulset(owner.name))
    primary = await read_primary(kube, owner)
    actions = actions if actions is not None else []
    await label_roles(kube, owner, primary, actions)
    await rollout_step(kube, owner, sts, primary, actions)
    problems = [
        Problem(c.get("reason", Reason.RECONCILE_FAILED), c.get("message", ""))
        for c in previous.get("conditions") or []
        if c.get("type") == "Degraded" and c.get("status") == "True"
    ]
    return cluster_status(
        cluster=owner.name, spec=spec, generation=int(previous.get("observedGeneration") or 1),
        statefulset=sts, previous=previous, now=now, image=spec.image or settings.default_image,
        problems=problems, certificate=None, primary=primary,
    ) | ({"certificate": previous["certificate"]} if "certificate" in previous else {})


async def ensure_engine_identity(kube: Kube, owner: Owner, pods: int, actions: list[Action]) -> None:
    """ServiceAccount, Role and RoleBinding NAME-engine, and the Leases the Role names.

    The Role lets the engines get and update their own Leases only (builders/engine_rbac.py),
    and not create any: the operator creates the primary Lease and the member Leases of
    pods 0..pods-1 when they are missing. Member Leases of nodes that still have a random
    node id (pods created by an older operator) are found by their label and named in the
    Role as long as they exist, so a pod that has not restarted yet keeps its election."""
    await kube.apply(engine_rbac.service_account(owner))
    members = await kube.list(engine_rbac.LEASE_API, "Lease", owner.namespace,
                              label_selector=f"{engine_rbac.LEASE_LABEL}={names.lease(owner.name)}")
    present = {m["metadata"]["name"] for m in members}
    await kube.apply(engine_rbac.role(owner, present))
    await kube.apply(engine_rbac.role_binding(owner))
    for lease in engine_rbac.leases(owner, pods):
        name = lease["metadata"]["name"]
        if name in present:
            continue
        if name == names.lease(owner.name) and await kube.get(engine_rbac.LEASE_API, "Lease", owner.namespace,
                                                               name) is not None:
            continue
        if await kube.create(lease) is not None and name == names.lease(owner.name):
            actions.append(Action("LeaseCreated", f"created Lease {name} for the engines' primary election"))


async def reconcile_network_policy(kube: Kube, owner: Owner, spec: VelocityClusterSpec,
                                   actions: list[Action]) -> None:
    """Apply the NetworkPolicy NAME when spec.networkPolicy.enabled, else delete the one
    the operator created (a policy of another name is never touched)."""
    if spec.network_policy.enabled:
        await kube.apply(network_policy_builder.network_policy(owner, spec.network_policy))
        return
    policy = await kube.get(network_policy_builder.API_VERSION, "NetworkPolicy", owner.namespace,
                            names.network_policy(owner.name))
    if policy is None or not _owned_by(policy, owner):
        return
    if await kube.delete(network_policy_builder.API_VERSION, "NetworkPolicy", owner.namespace,
                         names.network_policy(owner.name)):
        actions.append(Action("NetworkPolicyDeleted", f"deleted NetworkPolicy {names.network_policy(owner.name)} "
                                                      "(spec.networkPolicy.enabled is false)"))


def _owned_by(obj: dict[str, Any], owner: Owner) -> bool:
    return any(ref.get("uid") == owner.uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def _describe_changes(existing: dict[str, Any] | None, desired: dict[str, Any], actions: list[Action]) -> None:
    """Events for the changes this apply makes to the StatefulSet."""
    if existing is None:
        actions.append(Action("StatefulSetCreated", f"created StatefulSet {desired['metadata']['name']} "
                                                    f"with {desired['spec']['replicas']} pods"))
        return
    old_replicas, new_replicas = existing["spec"].get("replicas"), desired["spec"]["replicas"]
    if old_replicas != new_replicas:
        actions.append(Action("Scaling", f"scaling from {old_replicas} to {new_replicas} pods"))
    old_tpl = existing["spec"]["template"]
    new_tpl = desired["spec"]["template"]
    old_image = old_tpl["spec"]["containers"][0].get("image")
    new_image = new_tpl["spec"]["containers"][0]["image"]
    if old_image != new_image:
        actions.append(Action("RollingUpdate", f"image {old_image} -> {new_image}: rolling one pod at a time"))
    old_ann = old_tpl["metadata"].get("annotations") or {}
    new_ann = new_tpl["metadata"]["annotations"]
    for key, what in ((sts_builder.CONFIG_HASH_ANNOTATION, "engine config"),
                      (sts_builder.TLS_HASH_ANNOTATION, "server certificate")):
        if old_ann.get(key) is not None and old_ann.get(key) != new_ann.get(key):
            actions.append(Action("RollingUpdate", f"{what} changed: rolling one pod at a time"))
