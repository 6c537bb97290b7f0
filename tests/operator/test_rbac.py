"""manifests/ on a real API server, and the operator running with exactly its RBAC.

The kustomization is applied as-is; then the operator runs as the velocity-operator
ServiceAccount (a token from the TokenRequest API), so any verb missing from
manifests/rbac.yaml fails the reconciliation here instead of in a user's cluster. An
engine then runs with nothing but the Role the operator made for it (its own Leases by
name, issue 11) and the split credentials the operator generated and mounts.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner

from tests.kube.kube_api import KubeAPI

from .conftest import REPO, Kubectl, OperatorProcess, cluster, condition, mark_pods_ready, wait_for
from .podsim import BIN, SimulatedPod, engine_kubeconfig, operator_material


def _kubeconfig(kubectl: Kubectl, kube_api: KubeAPI, namespace: str, account: str, path: Path) -> KubeAPI:
    """A KubeAPI acting as ServiceAccount `namespace/account` (a TokenRequest token)."""
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": kube_api.server,
                                               "certificate-authority": str(kube_api.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "sa"}}],
        "current-context": "t",
    }
    path.write_text(json.dumps(config))
    return KubeAPI(kubeconfig=path, server=kube_api.server, ca_file=kube_api.ca_file,
                   cert_file=kube_api.cert_file, key_file=kube_api.key_file, bin_dir=kube_api.bin_dir)


@pytest.fixture
def service_account_api(kubectl: Kubectl, kube_api: KubeAPI, crds: None, tmp_path: Path) -> KubeAPI:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests"))
    return _kubeconfig(kubectl, kube_api, "velocity-system", "velocity-operator", tmp_path / "operator.kubeconfig")


@pytest.fixture
def sa_operator(operator: OperatorProcess, service_account_api: KubeAPI, tmp_path: Path) -> Iterator[OperatorProcess]:
    operator.stop()  # one operator at a time: the admin one would mask missing permissions
    proc = OperatorProcess(service_account_api, tmp_path)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        operator.start()


def test_manifests_apply(kubectl: Kubectl, service_account_api: KubeAPI) -> None:
    deployment = kubectl.get("deployment", "velocity-operator", "velocity-system")
    assert deployment is not None
    # Two replicas, one leading (tests/operator/test_leader_election.py), rolled one at a time.
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--leader-elect" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert kubectl.get("clusterrolebinding", "velocity-operator") is not None
    who = "--as=system:serviceaccount:velocity-system:velocity-operator"

    def can(*what: str) -> str:
        return kubectl.run("auth", "can-i", *what, who, check=False).stdout.strip()

    assert can("delete", "statefulsets") == "no", "the operator never deletes StatefulSets: RBAC must not allow it"
    # Secrets only by name: it cannot enumerate them (issue 11), nor delete them.
    for verb in ("list", "watch", "delete", "update"):
        assert can(verb, "secrets", "-A") == "no", verb
    assert can("get", "secrets/x-admin", "-n", "default") == "yes"
    # It applies Roles, it never reads, deletes or escalates them.
    for verb in ("get", "list", "delete", "escalate", "bind"):
        assert can(verb, "roles.rbac.authorization.k8s.io", "-n", "default") == "no", verb
    assert can("delete", "leases.coordination.k8s.io", "-n", "default") == "no"
    # Its own leader-election Lease (Role velocity-operator-leader-election).
    assert can("update", "leases.coordination.k8s.io/velocity-operator", "-n", "velocity-system") == "yes"


def test_operator_works_with_its_own_rbac(kubectl: Kubectl, sa_operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("rb", ns, backup={"schedule": "* * * * *", "retention": 1},
                          networkPolicy={"enabled": True}))
    wait_for("StatefulSet", lambda: kubectl.get("statefulset", "rb", ns))
    for kind, name in (("secret", "rb-auth"), ("secret", "rb-admin"), ("secret", "rb-replication"),
                       ("secret", "rb-ca"), ("secret", "rb-tls"),
                       ("service", "rb"), ("service", "rb-headless"), ("configmap", "rb-config"),
                       ("poddisruptionbudget", "rb"), ("networkpolicy", "rb"), ("lease", "rb-primary"),
                       ("lease", "rb-primary-member-0"), ("role", "rb-engine"), ("rolebinding", "rb-engine")):
        wait_for(f"{kind}/{name}", lambda k=kind, n=name: kubectl.get(k, n, ns))
    wait_for("a pod", lambda: kubectl.items("pods", ns, "app.kubernetes.io/instance=rb"))
    mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=rb")
    kubectl.run("wait", "--for=condition=Ready", "vc/rb", "-n", ns, "--timeout=30s")
    # The schedule fires every minute: a scheduled backup and its Job appear.
    backup = wait_for("a scheduled backup", lambda: kubectl.items("vbackup", ns, "vdb.io/scheduled=true"), timeout=90)
    name = backup[0]["metadata"]["name"]
    wait_for("its Job", lambda: kubectl.get("job", f"{name}-snapshot", ns), timeout=30)
    log = sa_operator.log.read_text()
    # Every 403 from the API server carries reason Forbidden ("forbidden" in messages);
    # a bare "403" would also match log timestamps such as 05:09:09,403. Writes (events,
    # secrets) into an earlier test's namespace while it terminates are refused as Forbidden
    # too, for a reason that is not RBAC: those lines do not count.
    denied = [line for line in log.splitlines()
              if "forbidden" in line.lower() and "being terminated" not in line]
    assert not denied, "\n".join(denied[:5])
    vc = kubectl.get("vc", "rb", ns)
    degraded = condition(vc, "Degraded")
    assert degraded is not None and degraded["status"] == "False"
    assert vc is not None and vc["status"]["credentials"] == {
        "clientSecret": "rb-auth", "adminSecret": "rb-admin", "replicationSecret": "rb-replication",
        "caSecret": "rb-ca"}
    # The Job takes the snapshot with the admin token, the only token it mounts.
    job = kubectl.get("job", f"{name}-snapshot", ns)
    assert job is not None
    job_secrets = {v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert job_secrets == {"rb-ca", "rb-admin"}, job_secrets
    # Turned off: the operator deletes its NetworkPolicy (get + delete, both in its RBAC).
    kubectl.run("patch", "vc", "rb", "-n", ns, "--type=merge", "-p", '{"spec":{"networkPolicy":{"enabled":false}}}')
    wait_for("the NetworkPolicy deleted", lambda: kubectl.get("networkpolicy", "rb", ns) is None)
    denied = [line for line in sa_operator.log.read_text().splitlines()
              if "forbidden" in line.lower() and "being terminated" not in line]
    assert not denied, "\n".join(denied[:5])


def _secret(kubectl: Kubectl, ns: str, name: str) -> str:
    secret = wait_for(f"Secret {name}", lambda: kubectl.get("secret", name, ns))
    return base64.b64decode(secret["data"]["token"]).decode()


def test_engine_runs_with_its_own_role_and_split_credentials(
        kubectl: Kubectl, kube_api: KubeAPI, sa_operator: OperatorProcess, ns: str, tmp_path: Path,
        engines: list[SimulatedPod]) -> None:
    # A cluster from before issue 11 has only NAME-auth: the operator keeps that token
    # (clients hold it) and adds the admin and replication Secrets.
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ec-auth", "namespace": ns},
                   "stringData": {"token": "the-token-clients-already-have-0123456789"}})
    kubectl.apply(cluster("ec", ns))
    vc: dict[str, Any] = wait_for("the cluster", lambda: kubectl.get("vc", "ec", ns))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "ec", ns))
    wait_for("rolebinding/ec-engine", lambda: kubectl.get("rolebinding", "ec-engine", ns))
    tokens = {name: _secret(kubectl, ns, name) for name in ("ec-auth", "ec-admin", "ec-replication")}
    assert tokens["ec-auth"] == "the-token-clients-already-have-0123456789"
    assert len(set(tokens.values())) == 3

    # The pods mount each credential from its own Secret and the engine config names the files.
    pod = sts["spec"]["template"]["spec"]
    mounted = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert mounted == {"tls": "ec-tls", "auth": "ec-auth", "admin": "ec-admin", "replication": "ec-replication"}
    paths = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    config_map = kubectl.get("configmap", "ec-config", ns)
    assert config_map is not None
    toml = tomllib.loads(config_map["data"]["velocity.toml"])
    assert toml["auth_token_file"] == f"{paths['auth']}/token"
    assert toml["admin_token_file"] == f"{paths['admin']}/token"
    assert toml["replication_token_file"] == f"{paths['replication']}/token"
    assert [c["name"] for c in pod["initContainers"]] == ["node-id"]

    # A real engine with those files and only the Role ec-engine (via its ServiceAccount).
    owner = Owner(name="ec", namespace=ns, uid=vc["metadata"]["uid"])
    material = operator_material(kubectl, ns, owner)
    kubeconfig = engine_kubeconfig(kubectl, kube_api, ns, "ec-engine", tmp_path / "engine.kubeconfig")
    engine = SimulatedPod(tmp_path / "ec-0", material, VelocityClusterSpec.model_validate(vc["spec"]),
                          lease_kubeconfig=kubeconfig, pod_name="ec-0")
    engines.append(engine)
    engine.start()
    assert engine.node_id == "0"
    endpoint = f"vdb://ec-0.ec-headless.{ns}.svc:2005"

    def lease(name: str) -> dict[str, Any]:
        return (kubectl.get("lease", name, ns) or {}).get("spec") or {}

    # It takes the Lease the operator created and renews its member Lease: get and update by name.
    wait_for("ec-0 to hold ec-primary", lambda: lease("ec-primary").get("holderIdentity") == endpoint)
    first = lease("ec-primary-member-0").get("renewTime")
    wait_for("its member Lease renewed", lambda: first and lease("ec-primary-member-0").get("renewTime") != first)
    wait_for("status.currentPrimary ec-0",
             lambda: ((kubectl.get("vc", "ec", ns) or {}).get("status") or {}).get("currentPrimary") == "ec-0")
    log = (tmp_path / "ec-0.log").read_text(errors="replace")
    assert "forbidden" not in log.lower() and " 403" not in log, log[-2000:]

    # Clients use NAME-auth; the admin token (NAME-admin) takes the backup Job's snapshot.
    done = engine.ctl("set", "k", "v")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "backup" / "b.vsnap"
    env = {**engine.backup_env(), "PATH": f"{BIN}:/usr/bin:/bin"}
    snap = subprocess.run([sys.executable, "-m", "velocity_operator.snapshot_job", "--file", str(target),
                           "--termination-log", str(tmp_path / "termination-log")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert snap.returncode == 0, snap.stderr
    assert target.stat().st_size > 0
    # The client token cannot take a snapshot (an admin operation).
    refused = engine.ctl("snapshot", str(tmp_path / "client.vsnap"))
    assert refused.returncode != 0 and "PERMISSION_DENIED" in refused.stderr, (refused.stdout, refused.stderr)
    assert not (tmp_path / "client.vsnap").exists()
    # The engine uses the mounted tokens: it generated none of its own into DATA_DIR.
    data = tmp_path / "ec-0" / "data"
    assert not {"auth-token", "admin-token", "replication-token"} & {p.name for p in data.iterdir()}


def test_operator_confined_to_one_namespace(kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess,
                                            service_account_api: KubeAPI, ns: str, tmp_path: Path) -> None:
    """The alternative to the ClusterRoleBinding (docs/operator/security.md): the same
    ClusterRole bound by a RoleBinding in one namespace, the operator run with --namespace,
    and cluster-wide only what kopf reads for discovery (CRDs, namespaces). Its Secrets, Roles and Leases elsewhere are
    out of reach, and it still runs a cluster."""
    account = "velocity-operator-confined"
    crd_reader = f"velocity-crd-reader-{ns}"
    kubectl.run("create", "serviceaccount", account, "-n", ns)
    kubectl.run("create", "rolebinding", "velocity-operator", "-n", ns, "--clusterrole=velocity-operator",
                f"--serviceaccount={ns}:{account}")
    # kopf's discovery: the CRDs, and namespaces (it lists them even with --namespace).
    kubectl.run("create", "clusterrole", crd_reader, "--verb=get,list,watch",
                "--resource=customresourcedefinitions.apiextensions.k8s.io", "--resource=namespaces")
    kubectl.run("create", "clusterrolebinding", crd_reader, f"--clusterrole={crd_reader}",
                f"--serviceaccount={ns}:{account}")
    api = _kubeconfig(kubectl, kube_api, ns, account, tmp_path / "confined.kubeconfig")
    who = f"--as=system:serviceaccount:{ns}:{account}"
    for what in (("get", "secrets", "-n", "default"), ("create", "roles.rbac.authorization.k8s.io", "-n", "default"),
                 ("list", "velocityclusters.vdb.io", "-A")):
        assert kubectl.run("auth", "can-i", *what, who, check=False).stdout.strip() == "no", what
    operator.stop()  # the session operator watches every namespace: one operator at a time
    confined = OperatorProcess(api, tmp_path, extra_args=["--namespace", ns])
    try:
        confined.start()
        kubectl.apply(cluster("cf", ns, networkPolicy={"enabled": True}))
        for kind, name in (("secret", "cf-auth"), ("secret", "cf-admin"), ("secret", "cf-replication"),
                           ("statefulset", "cf"), ("role", "cf-engine"), ("lease", "cf-primary"),
                           ("networkpolicy", "cf")):
            wait_for(f"{kind}/{name}", lambda k=kind, n=name: kubectl.get(k, n, ns))
        mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=cf")
        kubectl.run("wait", "--for=condition=Ready", "vc/cf", "-n", ns, "--timeout=60s")
        denied = [line for line in confined.log.read_text().splitlines() if "forbidden" in line.lower()]
        assert not denied, "\n".join(denied[:5])
    finally:
        confined.stop()
        operator.start()
        kubectl.run("delete", "clusterrolebinding", crd_reader, check=False)
        kubectl.run("delete", "clusterrole", crd_reader, check=False)
