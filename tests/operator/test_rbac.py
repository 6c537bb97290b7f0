"""manifests/ on a real API server, and the operator running with exactly its RBAC.

The kustomization is applied as-is; then the operator runs as the velocity-operator
ServiceAccount (a token from the TokenRequest API), so any verb missing from
manifests/rbac.yaml fails the reconciliation here instead of in a user's cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.kube_api import KubeAPI

from .conftest import REPO, Kubectl, OperatorProcess, cluster, condition, mark_pods_ready, wait_for


@pytest.fixture
def service_account_api(kubectl: Kubectl, kube_api: KubeAPI, crds: None, tmp_path: Path) -> KubeAPI:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests"))
    token = kubectl.run("create", "token", "velocity-operator", "-n", "velocity-system", "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": kube_api.server,
                                               "certificate-authority": str(kube_api.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "sa"}}],
        "current-context": "t",
    }
    path = tmp_path / "operator.kubeconfig"
    path.write_text(json.dumps(config))
    return KubeAPI(kubeconfig=path, server=kube_api.server, ca_file=kube_api.ca_file,
                   cert_file=kube_api.cert_file, key_file=kube_api.key_file, bin_dir=kube_api.bin_dir)


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
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert kubectl.get("clusterrolebinding", "velocity-operator") is not None
    can = kubectl.run("auth", "can-i", "delete", "statefulsets",
                      "--as=system:serviceaccount:velocity-system:velocity-operator", check=False)
    assert can.stdout.strip() == "no", "the operator never deletes StatefulSets: RBAC must not allow it"


def test_operator_works_with_its_own_rbac(kubectl: Kubectl, sa_operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("rb", ns, backup={"schedule": "* * * * *", "retention": 1}))
    wait_for("StatefulSet", lambda: kubectl.get("statefulset", "rb", ns))
    for kind, name in (("secret", "rb-auth"), ("secret", "rb-ca"), ("secret", "rb-tls"),
                       ("service", "rb"), ("service", "rb-headless"), ("configmap", "rb-config"),
                       ("poddisruptionbudget", "rb")):
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
