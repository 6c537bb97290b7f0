"""VelocityBackup on a real API server: the snapshot Job, results and failures."""

from __future__ import annotations

import json
import time
from typing import Any

from .conftest import Kubectl, OperatorProcess, cluster, condition, mark_pods_ready, wait_for


def _backup(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _phase(kubectl: Kubectl, ns: str, name: str, *phases: str) -> dict[str, Any] | None:
    obj = kubectl.get("vbackup", name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") in phases else None


def test_backup_of_a_missing_cluster_fails_with_a_reason(kubectl: Kubectl, operator: OperatorProcess,
                                                         ns: str) -> None:
    kubectl.apply(_backup("orphan", ns, cluster="nope"))
    obj = wait_for("Failed", lambda: _phase(kubectl, ns, "orphan", "Failed"))
    assert obj["status"]["reason"] == "ClusterNotFound"
    assert "nope" in obj["status"]["message"]
    kubectl.run("wait", "--for=condition=Completed=False", "vbackup/orphan", "-n", ns, "--timeout=5s")


def test_s3_backup_waits_for_its_secret_and_reports_the_s3_reason(kubectl: Kubectl, operator: OperatorProcess,
                                                                   ns: str) -> None:
    kubectl.apply(cluster("s3c", ns))
    wait_for("pod", lambda: kubectl.items("pods", ns, "app.kubernetes.io/instance=s3c"))
    mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=s3c,app.kubernetes.io/component=engine")
    kubectl.run("wait", "--for=condition=Ready", "vc/s3c", "-n", ns, "--timeout=30s")
    kubectl.apply(_backup("s3b", ns, cluster="s3c", destination={"s3": {
        "endpoint": "http://127.0.0.1:9000", "bucket": "bkt", "prefix": "db", "credentialsSecret": {"name": "creds"}}}))
    obj = wait_for("Pending", lambda: _phase(kubectl, ns, "s3b", "Pending"))
    assert obj["status"]["reason"] == "WaitingForCredentials"
    assert kubectl.get("job", "s3b-snapshot", ns) is None

    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                   "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "wrong"}})
    obj = wait_for("Running", lambda: _phase(kubectl, ns, "s3b", "Running"), timeout=60)
    assert obj["status"]["location"] == "s3://bkt/db/s3c/s3b.vsnap"
    job = kubectl.get("job", "s3b-snapshot", ns)
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    ref = env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "creds", "key": "AWS_SECRET_ACCESS_KEY"}
    assert "wrong" not in json.dumps(job)

    # Play the kubelet: the upload was refused (exit 3), which fails the Job at once.
    pod = wait_for("job pod", lambda: kubectl.items("pods", ns, "vdb.io/backup=s3b"))[0]
    report = {"error": "upload to s3://bkt/db/s3c/s3b.vsnap failed: PUT ...: HTTP 403 SignatureDoesNotMatch: ...",
              "reason": "S3AccessDenied"}
    now = "2026-01-01T00:00:00Z"
    kubectl.run("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"phase": "Failed", "containerStatuses": [{
                    "name": "snapshot", "image": container["image"], "imageID": "", "ready": False,
                    "restartCount": 0, "started": False,
                    "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": json.dumps(report),
                                             "startedAt": now, "finishedAt": now}}}]}}))
    obj = wait_for("Failed", lambda: _phase(kubectl, ns, "s3b", "Failed", "Completed"), timeout=60)
    assert obj["status"]["phase"] == "Failed", obj["status"]
    assert obj["status"]["reason"] == "S3AccessDenied"
    assert "SignatureDoesNotMatch" in obj["status"]["message"]
    # FailJob on exit 3: no second pod was started.
    assert len(kubectl.items("pods", ns, "vdb.io/backup=s3b")) == 1


def test_backup_runs_a_snapshot_job_and_records_the_result(kubectl: Kubectl, operator: OperatorProcess,
                                                           ns: str) -> None:
    kubectl.apply(cluster("bk", ns))
    wait_for("pod", lambda: kubectl.items("pods", ns, "app.kubernetes.io/instance=bk"))
    mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=bk,app.kubernetes.io/component=engine")
    kubectl.run("wait", "--for=condition=Ready", "vc/bk", "-n", ns, "--timeout=30s")

    kubectl.apply(_backup("bk-1", ns, cluster="bk"))
    obj = wait_for("Running", lambda: _phase(kubectl, ns, "bk-1", "Running"))
    assert obj["status"]["location"] == "pvc://bk-backups/velocity/bk/bk-1.vsnap"
    claim = kubectl.get("pvc", "bk-backups", ns)
    assert claim is not None and claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    job = kubectl.get("job", "bk-1-snapshot", ns)
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["VDB_ENDPOINT"] == f"vdb://bk.{ns}.svc:2005"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "VelocityBackup"

    # Play the kubelet: the Job's pod ran the snapshot and left its report.
    pod = wait_for("job pod", lambda: kubectl.items("pods", ns, "vdb.io/backup=bk-1"))[0]
    report = {"sizeBytes": 4096, "checksum": "sha256:" + "ab" * 32, "durationSeconds": 0.25}
    now = "2026-01-01T00:00:00Z"
    kubectl.run("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"phase": "Succeeded", "containerStatuses": [{
                    "name": "snapshot", "image": container["image"], "imageID": "", "ready": False,
                    "restartCount": 0, "started": False,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": json.dumps(report),
                                             "startedAt": now, "finishedAt": now}}}]}}))
    obj = wait_for("Completed", lambda: _phase(kubectl, ns, "bk-1", "Completed", "Failed"), timeout=60)
    assert obj["status"]["phase"] == "Completed", obj["status"]
    assert obj["status"]["sizeBytes"] == 4096
    assert obj["status"]["checksum"] == report["checksum"]
    assert obj["status"]["durationSeconds"] == 0.25
    kubectl.run("wait", "--for=condition=Completed", "vbackup/bk-1", "-n", ns, "--timeout=5s")
    vc = kubectl.get("vc", "bk", ns)
    assert vc is not None
    assert vc["status"]["lastBackup"]["name"] == "bk-1"
    succeeded = condition(vc, "BackupSucceeded")
    assert succeeded is not None and succeeded["status"] == "True"
    assert 'velocity_operator_backups_total{result="Completed"}' in operator.metrics()


def test_restore_waits_for_a_completed_backup(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("restored", ns, bootstrap={"fromBackup": {"name": "missing"}}))
    wait_for("warning event", lambda: "WaitingForBackup" in kubectl.run(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=restored", "-o", "json").stdout)
    assert kubectl.get("statefulset", "restored", ns) is None


def test_retention_deletes_old_scheduled_backups_and_their_files(kubectl: Kubectl, operator: OperatorProcess,
                                                                 ns: str) -> None:
    # A yearly schedule never fires during the test; the two "scheduled" backups are made
    # here. They name a missing cluster, so the operator finishes them at once (Failed)
    # and never writes them again; the test then marks them Completed, as if they had run.
    kubectl.apply(cluster("ret", ns, backup={"schedule": "@yearly", "retention": 1}))
    for name in ("ret-old", "ret-new"):
        obj = _backup(name, ns, cluster="ghost")
        obj["metadata"]["labels"] = {"vdb.io/cluster": "ret", "vdb.io/scheduled": "true"}
        kubectl.apply(obj)
        wait_for(f"{name} finished", lambda n=name: _phase(kubectl, ns, n, "Failed"))
        kubectl.run("patch", "vbackup", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"phase": "Completed", "location": f"pvc://ret-backups/velocity/ret/{name}.vsnap"}}))
        if name == "ret-old":  # creationTimestamp has a resolution of one second
            first = kubectl.get("vbackup", name, ns)
            assert first is not None
            created = str(first["metadata"]["creationTimestamp"])
            wait_for("next second", lambda c=created: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > c,
                     timeout=3, interval=0.05)
    wait_for("ret-old deleted", lambda: kubectl.get("vbackup", "ret-old", ns) is None)
    assert kubectl.get("vbackup", "ret-new", ns) is not None
    job = wait_for("cleanup Job", lambda: kubectl.get("job", "ret-old-cleanup", ns))
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["rm", "-f", "--"] and command[3] == "/backup/velocity/ret/ret-old.vsnap"
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ret-backups"


def test_retention_deletes_old_s3_objects(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    # As above, with the cluster's backups in a bucket: the cleanup Job deletes the object.
    s3 = {"endpoint": "http://s3.example:7070", "bucket": "bkt", "prefix": "velocity",
          "credentialsSecret": {"name": "creds"}}
    kubectl.apply(cluster("rets3", ns, backup={"schedule": "@yearly", "retention": 1, "destination": {"s3": s3}}))
    for name in ("rets3-old", "rets3-new"):
        obj = _backup(name, ns, cluster="ghost")
        obj["metadata"]["labels"] = {"vdb.io/cluster": "rets3", "vdb.io/scheduled": "true"}
        kubectl.apply(obj)
        wait_for(f"{name} finished", lambda n=name: _phase(kubectl, ns, n, "Failed"))
        kubectl.run("patch", "vbackup", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"phase": "Completed", "location": f"s3://bkt/velocity/rets3/{name}.vsnap"}}))
        if name == "rets3-old":
            first = kubectl.get("vbackup", name, ns)
            assert first is not None
            created = str(first["metadata"]["creationTimestamp"])
            wait_for("next second", lambda c=created: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > c,
                     timeout=3, interval=0.05)
    wait_for("rets3-old deleted", lambda: kubectl.get("vbackup", "rets3-old", ns) is None)
    job = wait_for("cleanup Job", lambda: kubectl.get("job", "rets3-old-cleanup", ns))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "velocity_operator.s3", "rm", "s3://bkt/velocity/rets3/rets3-old.vsnap"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VDB_S3_ENDPOINT"]["value"] == "http://s3.example:7070"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "creds"


def test_restore_from_an_s3_backup_downloads_it_first(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    # A finished backup (its cluster is gone) stored in a bucket its own spec names.
    s3 = {"endpoint": "http://s3.example:7070", "bucket": "bkt", "credentialsSecret": {"name": "creds"}}
    kubectl.apply(_backup("gone-1", ns, cluster="gone", destination={"s3": s3}))
    wait_for("gone-1 finished", lambda: _phase(kubectl, ns, "gone-1", "Failed"))
    checksum = "sha256:" + "cd" * 32
    kubectl.run("patch", "vbackup", "gone-1", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "Completed", "location": "s3://bkt/gone/gone-1.vsnap", "checksum": checksum}}))
    # A backup in a bucket no destination names cannot be fetched: the cluster waits.
    kubectl.apply(_backup("elsewhere", ns, cluster="gone"))
    wait_for("elsewhere finished", lambda: _phase(kubectl, ns, "elsewhere", "Failed"))
    kubectl.run("patch", "vbackup", "elsewhere", "-n", ns, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"phase": "Completed", "location": "s3://other/gone/elsewhere.vsnap"}}))
    kubectl.apply(cluster("stuck", ns, bootstrap={"fromBackup": {"name": "elsewhere"}}))

    kubectl.apply(cluster("from-s3", ns, bootstrap={"fromBackup": {"name": "gone-1"}}))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "from-s3", ns))
    pod = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["node-id", "restore-download"]
    init = pod["initContainers"][1]
    assert init["args"] == ["s3://bkt/gone/gone-1.vsnap", "/restore/backup.vsnap", "--sha256", "cd" * 32]
    assert {e["name"]: e.get("value") for e in init["env"]}["VDB_S3_ENDPOINT"] == "http://s3.example:7070"
    assert {"name": "VELOCITY_RESTORE_FILE", "value": "/restore/backup.vsnap"} in pod["containers"][0]["env"]

    def waiting_event() -> bool:
        events = json.loads(kubectl.run("get", "events", "-n", ns, "--field-selector",
                                        "involvedObject.name=stuck", "-o", "json").stdout)
        return any("no S3 destination for bucket other" in e.get("message", "") for e in events["items"])

    wait_for("WaitingForBackup event of stuck", waiting_event)
    assert kubectl.get("statefulset", "stuck", ns) is None
