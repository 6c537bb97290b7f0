"""kubectl velocity's pure parts: the status summary and screen, the switchover plan,
velocityctl's command line, the port-forward line parser (no cluster)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.controllers.promote import SWITCHOVER_ANNOTATION, Decision, plan_request
from velocity_operator.plugin.connect import Credentials, forwarded_port, velocityctl_command, write_credentials
from velocity_operator.plugin.requests import backup_object
from velocity_operator.plugin.status import age, render, summarize

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
NS = "prod"


def _endpoint(ordinal: int) -> str:
    return f"vdb://kv-{ordinal}.kv-headless.{NS}.svc:2005"


def _pod(ordinal: int, *, ready: bool = True, role: str | None = None, restarts: int = 0) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": "kv"} | ({"vdb.io/role": role} if role else {})
    return {"metadata": {"name": f"kv-{ordinal}", "labels": labels},
            "spec": {"nodeName": f"node-{ordinal}"},
            "status": {"phase": "Running", "podIP": f"10.0.0.{ordinal}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "engine", "restartCount": restarts}]}}


def _member(ordinal: int, seq: int) -> dict[str, Any]:
    return {"metadata": {"name": f"kv-primary-member-{ordinal}", "annotations": {"vdb.io/seq": str(seq)}},
            "spec": {"holderIdentity": _endpoint(ordinal), "renewTime": "2026-03-01T11:59:58.000000Z"}}


def _raw(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "cluster": {
            "metadata": {"name": "kv", "namespace": NS, "generation": 3},
            "spec": {"replicas": 3, "backup": {"schedule": "0 3 * * *"}},
            "status": {"phase": "Degraded", "observedGeneration": 3, "replicas": 3, "readyReplicas": 2,
                       "updatedReplicas": 3, "image": "velocity/engine:dev", "currentPrimary": "kv-1",
                       "certificate": {"secretName": "kv-tls", "notAfter": "2026-03-31T12:00:00Z"},
                       "lastBackup": {"name": "kv-b1", "phase": "Completed",
                                      "completionTime": "2026-03-01T09:00:00Z", "location": "pvc://kv-backups/b1"},
                       "conditions": [{"type": "Ready", "status": "False", "reason": "PodsNotReady",
                                       "message": "2/3 pods ready", "lastTransitionTime": "2026-03-01T11:55:00Z"}]},
        },
        "pods": [_pod(2, ready=False, restarts=3), _pod(10), _pod(1, role="primary"), _pod(0, role="replica")],
        "lease": {"metadata": {"annotations": {"vdb.io/epoch": "7"}},
                  "spec": {"holderIdentity": _endpoint(1), "renewTime": "2026-03-01T11:59:59.000000Z",
                           "leaseDurationSeconds": 15}},
        "members": [_member(0, 95), _member(1, 100), _member(2, 40)],
        "backups": [
            {"metadata": {"name": f"kv-b{i}", "creationTimestamp": f"2026-02-2{i}T00:00:00Z",
                          "labels": {"vdb.io/scheduled": "true"}},
             "spec": {"cluster": "kv"}, "status": {"phase": "Completed", "sizeBytes": 2048 * i}}
            for i in range(1, 8)
        ],
    }
    raw.update(over)
    return raw


def test_summary_joins_lease_members_and_pods() -> None:
    s = summarize(_raw())
    assert s["primary"] == "kv-1"
    assert s["lease"]["epoch"] == 7 and s["lease"]["holderPod"] == "kv-1"
    pods = {p["name"]: p for p in s["pods"]}
    assert [p["name"] for p in s["pods"]] == ["kv-0", "kv-1", "kv-2", "kv-10"]  # by ordinal, not as text
    assert {n: p["lagBatches"] for n, p in pods.items()} == {"kv-0": 5, "kv-1": 0, "kv-2": 60, "kv-10": None}
    assert pods["kv-2"]["ready"] is False and pods["kv-2"]["restarts"] == 3
    assert pods["kv-1"]["role"] == "primary" and pods["kv-0"]["role"] == "replica"
    assert [b["name"] for b in s["backups"]] == ["kv-b7", "kv-b6", "kv-b5", "kv-b4", "kv-b3"]
    assert s["backupsTotal"] == 7
    json.dumps(s)  # JSON-ready as it is


def test_primary_comes_from_the_lease_not_a_stale_label() -> None:
    raw = _raw()
    raw["lease"]["spec"]["holderIdentity"] = _endpoint(0)
    s = summarize(raw)
    assert s["primary"] == "kv-0"
    roles = {p["name"]: p["role"] for p in s["pods"]}
    assert roles["kv-0"] == "primary"
    assert {p["name"]: p["lagBatches"] for p in s["pods"]}["kv-1"] == 0  # 95 - 100, never negative


def test_no_lease_holder_yet() -> None:
    raw = _raw(lease={"metadata": {}, "spec": {}}, members=[])
    s = summarize(raw)
    assert s["lease"]["holder"] is None and s["primary"] == "kv-1"  # status.currentPrimary, last known
    assert all(p["lagBatches"] is None for p in s["pods"])
    assert "no holder (election pending)" in render(s, NOW)


def test_render_is_one_screen() -> None:
    text = render(summarize(_raw()), NOW)
    assert "Cluster      prod/kv" in text
    assert "Replicas     3 desired, 2 ready, 3 updated, 3 exist" in text
    assert "Lease        kv-primary held by kv-1, epoch 7, renewed 1s ago" in text
    assert "Certificate  kv-tls, expires 2026-03-31T12:00:00Z (in 30d)" in text
    assert "Last backup  kv-b1 Completed 3h ago -> pvc://kv-backups/b1" in text
    assert "Schedule     '0 3 * * *', not run yet" in text
    lines = text.splitlines()
    ready = next(line for line in lines if line.startswith("Ready "))
    assert ready.split()[:4] == ["Ready", "False", "PodsNotReady", "5m"] and ready.endswith("2/3 pods ready")
    kv2 = next(line for line in lines if line.startswith("kv-2 "))
    assert kv2.split() == ["kv-2", "replica", "0/1", "Running", "3", "40", "60", "2s", "node-2"]
    assert "Backups (newest 5 of 7)" in text
    assert next(line for line in lines if line.startswith("kv-b7 ")).split()[:5] == [
        "kv-b7", "Completed", "2d", "14.0", "KiB"]
    assert len(lines) < 40


def test_age() -> None:
    assert age("2026-03-01T11:59:15Z", NOW) == "45s"
    assert age("2026-03-01T09:00:00Z", NOW) == "3h"
    assert age("2026-03-06T12:00:00Z", NOW) == "in 5d"
    assert age(None, NOW) == "-" and age("yesterday", NOW) == "-"


def _body(annotation: str | None) -> dict[str, Any]:
    return {"metadata": {"name": "kv", "annotations": {SWITCHOVER_ANNOTATION: annotation} if annotation else {}}}


@pytest.mark.parametrize(("annotation", "primary", "decision"), [
    (None, "kv-0", Decision.NONE),
    ("kv-0", "kv-0", Decision.DONE),
    ("kv-1", "kv-0", Decision.SWITCH),
    ("kv-9", "kv-0", Decision.REJECT),  # not a pod of the cluster
    ("kv-1", None, Decision.REJECT),  # nobody holds the Lease
    ("kv-1", "kv-5", Decision.REJECT),  # the holder's pod is gone
])
def test_switchover_request_plan(annotation: str | None, primary: str | None, decision: Decision) -> None:
    pods = [_pod(0), _pod(1)]
    assert plan_request("kv", _body(annotation), primary, pods).decision is decision


def test_backup_object() -> None:
    obj = backup_object("kv", NS, NOW)
    assert obj["metadata"]["name"] == "kv-20260301120000"
    assert obj["spec"] == {"cluster": "kv"} and obj["kind"] == "VelocityBackup"
    assert backup_object("kv", NS, NOW, "mine")["metadata"]["name"] == "mine"


def test_forwarded_port() -> None:
    assert forwarded_port("Forwarding from 127.0.0.1:43121 -> 2005\n") == 43121
    assert forwarded_port("Forwarding from [::1]:43121 -> 2005") == 43121
    assert forwarded_port("Handling connection for 43121") is None


def test_velocityctl_gets_credentials_as_files_never_as_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDB_TOKEN", "inherited-must-not-win")
    creds = Credentials(True, b"CA PEM", b"client-secret", b"admin-secret")
    with write_credentials(creds) as files:
        assert {k: p.read_bytes() for k, p in files.items()} == {
            "ca": b"CA PEM", "token": b"client-secret", "admin": b"admin-secret"}
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in files.values())
        assert files["ca"].parent.stat().st_mode & 0o777 == 0o700
        argv, env = velocityctl_command("velocityctl", "vdb://127.0.0.1:1", "kv.prod.svc", files, ("get", "k"))
        directory = files["ca"].parent
    assert not directory.exists()  # removed with the block
    assert argv == ["velocityctl", "--server-name", "kv.prod.svc", "get", "k"]
    assert "VDB_TOKEN" not in env
    assert env["VDB_ENDPOINT"] == "vdb://127.0.0.1:1"
    assert (env["VDB_CA"], env["VDB_TOKEN_FILE"], env["VDB_ADMIN_TOKEN_FILE"]) == tuple(
        str(directory / k) for k in ("ca", "token", "admin"))
    assert not any("secret" in a for a in argv)


def test_plaintext_cluster_connects_insecure(tmp_path: Path) -> None:
    argv, env = velocityctl_command("velocityctl", "vdb://127.0.0.1:1", None, {}, ("ping",))
    assert argv == ["velocityctl", "--insecure", "ping"]
    assert "VDB_CA" not in env and "VDB_TOKEN_FILE" not in env
