"""Scheduled backups (VelocityCluster.spec.backup): create VelocityBackups when the cron
schedule fires and delete the oldest scheduled ones beyond spec.backup.retention, their
files with them (a cleanup Job removes them from the claim or the S3 bucket)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .. import cron
from ..api.cluster import VelocityClusterSpec
from ..builders.backup_job import cleanup_job, stored_location
from ..builders.meta import Owner
from ..builders.placement import job_placement
from ..kube import Kube
from .actions import Action
from .backup import scheduled_backup

__all__ = ["reconcile_schedule", "retention_victims"]


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def retention_victims(backups: list[dict[str, Any]], retention: int) -> list[str]:
    """Names of scheduled backups to delete: all Completed ones except the newest `retention`.
    Failed ones older than the newest kept one go too; running ones are never touched."""
    done = sorted((b for b in backups if (b.get("status") or {}).get("phase") in ("Completed", "Failed")),
                  key=lambda b: b["metadata"].get("creationTimestamp", ""), reverse=True)
    completed = [b for b in done if b["status"]["phase"] == "Completed"]
    keep = {b["metadata"]["name"] for b in completed[:retention]}
    oldest_kept = min((b["metadata"].get("creationTimestamp", "") for b in completed[:retention]), default="")
    victims = []
    for b in done:
        name = b["metadata"]["name"]
        if name in keep:
            continue
        if b["status"]["phase"] == "Completed" or b["metadata"].get("creationTimestamp", "") < oldest_kept:
            victims.append(name)
    return victims


async def reconcile_schedule(kube: Kube, body: dict[str, Any], now: dt.datetime,
                             actions: list[Action], *, default_image: str) -> dict[str, Any]:
    """Create a backup if one is due and apply retention; returns status fields to set."""
    spec = VelocityClusterSpec.model_validate(body.get("spec") or {})
    if spec.backup is None or spec.backup.suspend:
        return {}
    meta = body["metadata"]
    status = body.get("status") or {}
    since = _parse_ts(status.get("lastScheduledBackupTime") or meta["creationTimestamp"])
    patch: dict[str, Any] = {}
    due = cron.parse(spec.backup.schedule).due_between(since, now)
    if due is not None:
        obj = scheduled_backup(body, due)
        if await kube.create(obj) is not None:
            actions.append(Action("BackupScheduled", f"created VelocityBackup {obj['metadata']['name']}"))
        patch["lastScheduledBackupTime"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
    selector = f"vdb.io/cluster={meta['name']},vdb.io/scheduled=true"
    backups = await kube.list("vdb.io/v1alpha1", "VelocityBackup", meta["namespace"], label_selector=selector)
    by_name = {b["metadata"]["name"]: b for b in backups}
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    for victim in retention_victims(backups, spec.backup.retention):
        location = str((by_name[victim].get("status") or {}).get("location") or "")
        stored = stored_location(location, spec.backup.destination)  # pvc:// or s3://
        if stored is not None:
            await kube.create(cleanup_job(owner, cluster=meta["name"], backup=victim,
                                          location=stored, image=spec.image or default_image,
                                          placement=job_placement(spec)))
        await kube.delete("vdb.io/v1alpha1", "VelocityBackup", meta["namespace"], victim)
        actions.append(Action("BackupExpired", f"deleted VelocityBackup {victim} and its files "
                                               f"(retention {spec.backup.retention})"))
    return patch
