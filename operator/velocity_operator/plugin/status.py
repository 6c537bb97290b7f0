"""`kubectl velocity status NAME`: one screen about a VelocityCluster.

`collect` reads the objects (no engine connection: everything comes from the API server)
and `summarize` turns them into one plain, JSON-ready dict; `render` prints that dict.
Both of the latter are pure, so the layout is tested without a cluster.

Where each number comes from:

- desired/ready/updated replicas, phase, conditions, image, certificate, last backup:
  the VelocityCluster's spec and status (written by the operator);
- primary, epoch: Lease NAME-primary (holderIdentity names the pod; annotation
  `vdb.io/epoch`), written by the engines' Lease agents;
- each pod's log position: its member Lease NAME-primary-member-ID (annotation
  `vdb.io/seq`, renewed every renew interval); lag = the primary's position minus the
  pod's, in write batches (what `velocity_replication_lag_records` counts);
- the engine pods (not the backup Jobs'): phase, readiness, restarts, node and the `vdb.io/role` label;
- backups: this cluster's VelocityBackups, newest first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .. import names
from ..api.crd import BACKUP, CLUSTER
from ..controllers.promote import engine_pod_selector
from ..kube import Kube

__all__ = ["EPOCH_ANNOTATION", "SEQ_ANNOTATION", "ClusterNotFound", "collect", "render", "summarize"]

# Written by the engine's Lease agent (engine/velocity_engine/replication/lease.py).
EPOCH_ANNOTATION = "vdb.io/epoch"
SEQ_ANNOTATION = "vdb.io/seq"
MEMBER_LABEL = "vdb.io/lease"
LEASE_API = "coordination.k8s.io/v1"
BACKUPS_SHOWN = 5


class ClusterNotFound(LookupError):
    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(f'VelocityCluster "{name}" not found in namespace "{namespace}"')


async def collect(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    """The raw objects `summarize` needs; ClusterNotFound when there is no such cluster."""
    cluster = await kube.get(CLUSTER.api_version, CLUSTER.kind, namespace, name)
    if cluster is None:
        raise ClusterNotFound(name, namespace)
    lease_name = names.lease(name)
    backups = await kube.list(BACKUP.api_version, BACKUP.kind, namespace)
    return {
        "cluster": cluster,
        "pods": await kube.list("v1", "Pod", namespace, label_selector=engine_pod_selector(name)),
        "lease": await kube.get(LEASE_API, "Lease", namespace, lease_name),
        "members": await kube.list(LEASE_API, "Lease", namespace, label_selector=f"{MEMBER_LABEL}={lease_name}"),
        "backups": [b for b in backups if (b.get("spec") or {}).get("cluster") == name],
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def _pod_summary(pod: dict[str, Any], positions: dict[str, dict[str, Any]], primary: str | None) -> dict[str, Any]:
    meta, status = pod["metadata"], pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    name = meta["name"]
    member = positions.get(name, {})
    head = positions.get(primary or "", {}).get("seq")
    seq = member.get("seq")
    lag = None if name == primary or head is None or seq is None else max(head - seq, 0)
    return {
        "name": name,
        "role": "primary" if name == primary else (meta.get("labels") or {}).get(names.ROLE_LABEL) or "replica",
        "ready": ready,
        "phase": status.get("phase") or "Unknown",
        "restarts": sum(int(c.get("restartCount") or 0) for c in containers),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "ip": status.get("podIP"),
        "seq": seq,
        "lagBatches": 0 if name == primary and seq is not None else lag,
        "positionRenewTime": member.get("renewTime"),
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """One JSON-ready dict from `collect`'s objects (pure)."""
    cluster = raw["cluster"]
    meta, spec, status = cluster["metadata"], cluster.get("spec") or {}, cluster.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    lease = raw.get("lease")
    lease_spec = (lease or {}).get("spec") or {}
    holder = lease_spec.get("holderIdentity") or None
    primary = names.pod_of_endpoint(name, namespace, holder) if holder else None
    positions: dict[str, dict[str, Any]] = {}
    for member in raw.get("members") or []:
        pod = names.pod_of_endpoint(name, namespace, (member.get("spec") or {}).get("holderIdentity") or "")
        if pod is not None:
            positions[pod] = {"seq": _int(_annotations(member).get(SEQ_ANNOTATION)),
                              "renewTime": (member.get("spec") or {}).get("renewTime")}
    pods = sorted((_pod_summary(p, positions, primary) for p in raw.get("pods") or []),
                  key=lambda p: (len(p["name"]), p["name"]))
    backups = sorted(raw.get("backups") or [], key=lambda b: b["metadata"].get("creationTimestamp") or "",
                     reverse=True)
    schedule = spec.get("backup") or {}
    return {
        "name": name,
        "namespace": namespace,
        "phase": status.get("phase"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "image": status.get("image") or spec.get("image"),
        "replicas": {
            "desired": spec.get("replicas", 1),
            "current": status.get("replicas"),
            "ready": status.get("readyReplicas"),
            "updated": status.get("updatedReplicas"),
        },
        "primary": primary or status.get("currentPrimary"),
        "lease": {
            "name": names.lease(name),
            "exists": lease is not None,
            "holder": holder,
            "holderPod": primary,
            "epoch": _int(_annotations(lease).get(EPOCH_ANNOTATION)),
            "renewTime": lease_spec.get("renewTime"),
            "durationSeconds": lease_spec.get("leaseDurationSeconds"),
        },
        "tls": (spec.get("tls") or {}).get("enabled", True),
        "certificate": status.get("certificate"),
        "credentials": status.get("credentials"),
        "lastBackup": status.get("lastBackup"),
        "backupSchedule": {"schedule": schedule.get("schedule"), "suspend": schedule.get("suspend", False),
                           "lastScheduledTime": status.get("lastScheduledBackupTime")} if schedule else None,
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")}
            for c in status.get("conditions") or []
        ],
        "pods": pods,
        "backups": [
            {"name": b["metadata"]["name"], "phase": (b.get("status") or {}).get("phase") or "Pending",
             "created": b["metadata"].get("creationTimestamp"),
             "completionTime": (b.get("status") or {}).get("completionTime"),
             "sizeBytes": (b.get("status") or {}).get("sizeBytes"),
             "location": (b.get("status") or {}).get("location"),
             "scheduled": (b["metadata"].get("labels") or {}).get("vdb.io/scheduled") == "true"}
            for b in backups[:BACKUPS_SHOWN]
        ],
        "backupsTotal": len(backups),
    }


# -- text -----------------------------------------------------------------------------


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def age(value: Any, now: dt.datetime) -> str:
    """kubectl's short age: 45s, 12m, 3h, 5d (negative: "in 5d"); "-" when unknown."""
    when = _parse_time(value)
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if ahead else text


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return ["   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)]


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def render(s: dict[str, Any], now: dt.datetime) -> str:
    """The one-screen text of `summarize`'s dict, ages relative to `now`."""
    r = s["replicas"]
    lease = s["lease"]
    lines = [f"Cluster      {s['namespace']}/{s['name']}",
             f"Phase        {_dash(s['phase'])}   (generation {_dash(s['generation'])}, "
             f"observed {_dash(s['observedGeneration'])})",
             f"Image        {_dash(s['image'])}",
             f"Replicas     {r['desired']} desired, {_dash(r['ready'])} ready, {_dash(r['updated'])} updated, "
             f"{_dash(r['current'])} exist",
             f"Primary      {_dash(s['primary'])}"]
    if not lease["exists"]:
        lines.append(f"Lease        {lease['name']}: not created yet")
    elif lease["holder"] is None:
        lines.append(f"Lease        {lease['name']}: no holder (election pending)")
    else:
        lines.append(f"Lease        {lease['name']} held by {lease['holderPod'] or lease['holder']}, "
                     f"epoch {_dash(lease['epoch'])}, renewed {age(lease['renewTime'], now)} ago")
    cert = s.get("certificate") or {}
    if not s["tls"]:
        lines.append("TLS          disabled (plaintext)")
    elif cert:
        lines.append(f"Certificate  {cert.get('secretName')}, expires {_dash(cert.get('notAfter'))} "
                     f"({age(cert.get('notAfter'), now)})")
    last = s.get("lastBackup") or {}
    if last:
        lines.append(f"Last backup  {last.get('name')} {last.get('phase')} {age(last.get('completionTime'), now)} ago"
                     + (f" -> {last['location']}" if last.get("location") else ""))
    else:
        lines.append("Last backup  none finished yet")
    sched = s.get("backupSchedule")
    if sched:
        lines.append(f"Schedule     {sched['schedule']!r}" + (" (suspended)" if sched["suspend"] else "")
                     + (f", last run {age(sched['lastScheduledTime'], now)} ago" if sched["lastScheduledTime"]
                        else ", not run yet"))

    lines += ["", "Conditions"]
    if s["conditions"]:
        lines += _table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"),
                        [(c["type"], c["status"], _dash(c["reason"]), age(c["lastTransitionTime"], now),
                          _dash(c["message"])) for c in s["conditions"]])
    else:
        lines.append("none reported yet")

    lines += ["", "Pods"]
    if s["pods"]:
        lines += _table(("NAME", "ROLE", "READY", "STATUS", "RESTARTS", "SEQ", "LAG", "POSITION AGE", "NODE"),
                        [(p["name"], p["role"], "1/1" if p["ready"] else "0/1", p["phase"], str(p["restarts"]),
                          _dash(p["seq"]), _dash(p["lagBatches"]), age(p["positionRenewTime"], now),
                          _dash(p["node"])) for p in s["pods"]])
    else:
        lines.append("no pods")

    lines += ["", f"Backups (newest {len(s['backups'])} of {s['backupsTotal']})"]
    if s["backups"]:
        lines += _table(("NAME", "PHASE", "AGE", "SIZE", "LOCATION"),
                        [(b["name"], b["phase"], age(b["created"], now), _size(b["sizeBytes"]),
                          _dash(b["location"])) for b in s["backups"]])
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"
