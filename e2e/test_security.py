"""Issue 11 on a real cluster: split credentials and the optional NetworkPolicy.

- Every pod mounts the client, admin and replication tokens from their own Secrets; the
  replicas stream from the primary with the replication token, clients write with the
  client token, the client token is refused an admin operation (a snapshot), and a
  VelocityBackup's Job takes its snapshot with the admin token.
- spec.networkPolicy creates the NetworkPolicy CLUSTER, everything it admits keeps
  working (clients of the namespace, replication, backups), turning it off deletes it. The
  local cluster's network plugin (CNI `bridge`, hack/cluster) does not enforce
  NetworkPolicy: a client the policy does not admit still connects there, which this
  module records (docs/operator/security.md says so; on an enforcing plugin that check
  fails and the documentation must change with it).

The operator runs as a host process (e2e/operator_host.py). Run:
`make e2e E2E_ARGS='-k test_security'`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from .kube import Kubectl, KubectlError, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import OperatorProcess, running_operator
from .sdk_pods import client_outcome, run_client, service_endpoint

NAME = "sec"
TOKENS = {"auth": f"{NAME}-auth", "admin": f"{NAME}-admin", "replication": f"{NAME}-replication"}
# The network plugin of hack/cluster (CNI bridge) implements no NetworkPolicy.
LOCAL_CNI_ENFORCES_NETWORK_POLICY = False


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


@pytest.fixture(scope="module")
def secured(namespace: Kubectl, operator: OperatorProcess) -> Kubectl:
    """A two-pod cluster (TLS on, the default), Ready."""
    namespace.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": NAME},
                     "spec": {"replicas": 2, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                              "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}}}})
    namespace.run("wait", "--for=condition=Ready", f"vc/{NAME}", "--timeout=300s", timeout=320)
    return namespace


def _ctl(ns: Kubectl, pod: str, token: str, *args: str) -> str:
    """velocityctl inside an engine pod, against its own engine, with one mounted token."""
    server_name = f"{pod}.{NAME}-headless.{ns.namespace}.svc"
    return ns.run("exec", pod, "-c", "engine", "--", "env", "VDB_ENDPOINT=vdb://127.0.0.1:2005",
                  "VDB_CA=/etc/velocity/tls/ca.crt", f"VDB_TOKEN_FILE=/etc/velocity/{token}/token",
                  "velocityctl", "--server-name", server_name, *args)


def _primary(ns: Kubectl) -> str:
    primary = ns.json("get", "vc", NAME)["status"].get("currentPrimary")
    assert primary, "no primary"
    return str(primary)


def _replication(ns: Kubectl) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(_ctl(ns, _primary(ns), "auth", "info", "--json", "replication"))
    return dict(info.get("replication", info))


def _streaming_replicas(ns: Kubectl) -> int:
    return sum(1 for r in _replication(ns).get("replicas") or [] if r.get("state") == "streaming")


def test_split_credentials_are_mounted_and_used(secured: Kubectl) -> None:
    ns = secured
    vc = ns.json("get", "vc", NAME)
    assert vc["status"]["credentials"] == {"clientSecret": TOKENS["auth"], "adminSecret": TOKENS["admin"],
                                           "replicationSecret": TOKENS["replication"], "caSecret": f"{NAME}-ca"}
    tokens = {role: base64.b64decode(ns.json("get", "secret", secret)["data"]["token"]).decode()
              for role, secret in TOKENS.items()}
    assert len(set(tokens.values())) == 3

    # Each pod has each token from its own Secret, its ordinal as node id, and generated none.
    for ordinal in (0, 1):
        pod = f"{NAME}-{ordinal}"
        for role, token in tokens.items():
            assert ns.exec(pod, "cat", f"/etc/velocity/{role}/token").strip() == token, (pod, role)
        assert ns.exec(pod, "cat", "/data/node-id").strip() == str(ordinal)
        listing = ns.exec(pod, "ls", "-A", "/data").split()
        assert not {"auth-token", "admin-token", "replication-token"} & set(listing), listing

    # Clients write with the client token; the replica streams with the replication token.
    assert "OK" in run_client(ns, NAME, "sec-c-set", service_endpoint(ns, NAME), "set", "k", "v")
    wait_for(lambda: _streaming_replicas(ns) == 1, timeout=120, what="the replica streaming from the primary")

    # The client token may not take a snapshot; the admin token may.
    primary = _primary(ns)
    with pytest.raises(KubectlError, match="PERMISSION_DENIED"):
        _ctl(ns, primary, "auth", "snapshot", "/tmp/by-client.vsnap")
    _ctl(ns, primary, "admin", "snapshot", "/tmp/by-admin.vsnap")
    assert int(ns.exec(primary, "stat", "-c", "%s", "/tmp/by-admin.vsnap")) > 0
    ns.exec(primary, "rm", "-f", "/tmp/by-admin.vsnap")

    # A VelocityBackup: its Job mounts NAME-admin only and takes the snapshot with it.
    ns.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup", "metadata": {"name": "sec-b1"},
              "spec": {"cluster": NAME}})
    backup = wait_for(lambda: (b := ns.json("get", "vbackup", "sec-b1"))
                      and b.get("status", {}).get("phase") in ("Completed", "Failed") and b,
                      timeout=300, what="backup sec-b1 to finish")
    assert backup["status"]["phase"] == "Completed", backup["status"]
    job = ns.json("get", "job", "sec-b1-snapshot")
    secrets = {v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secrets == {f"{NAME}-ca", f"{NAME}-admin"}


def _policy(ns: Kubectl) -> dict[str, Any] | None:
    try:
        policy: dict[str, Any] = ns.json("get", "networkpolicy", NAME)
    except KubectlError as exc:
        if "NotFound" in str(exc):
            return None
        raise
    return policy


def _patch(ns: Kubectl, network_policy: dict[str, Any]) -> None:
    ns.run("patch", "vc", NAME, "--type=merge", "-p", json.dumps({"spec": {"networkPolicy": network_policy}}))


def test_network_policy_object_and_what_it_admits(secured: Kubectl) -> None:
    ns = secured
    assert _policy(ns) is None  # off by default
    # Clients: none besides the cluster's own pods and the operator.
    _patch(ns, {"enabled": True, "clients": [], "prometheus": []})
    policy = wait_for(lambda: _policy(ns), timeout=60, what="the NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == NAME
    assert spec["policyTypes"] == ["Ingress"]
    assert [[p["port"] for p in rule["ports"]] for rule in spec["ingress"]] == [[2005]]
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "VelocityCluster"

    # A client pod of the namespace is not admitted by this policy. The local network plugin
    # does not enforce NetworkPolicy, so it connects anyway (docs/operator/security.md).
    phase, logs = client_outcome(ns, NAME, "sec-c-denied", service_endpoint(ns, NAME), "set", "k2", "v2")
    enforced = phase != "Succeeded"
    print(f"\nNetworkPolicy enforced by the local network plugin: {enforced} ({phase}: {logs.strip()[-200:]})")
    assert enforced is LOCAL_CNI_ENFORCES_NETWORK_POLICY, (
        "the local cluster's network plugin now enforces NetworkPolicy: update docs/operator/security.md "
        f"and LOCAL_CNI_ENFORCES_NETWORK_POLICY ({phase}: {logs})")

    # The default clients (every pod of the namespace) are admitted on any plugin; the
    # replica keeps streaming and a backup still works with the policy in place.
    _patch(ns, {"enabled": True, "clients": None, "prometheus": None})
    wait_for(lambda: len((_policy(ns) or {}).get("spec", {}).get("ingress", [])) == 3, timeout=60,
             what="the NetworkPolicy with client and Prometheus rules")
    assert "OK" in run_client(ns, NAME, "sec-c-allowed", service_endpoint(ns, NAME), "set", "k3", "v3")
    wait_for(lambda: _streaming_replicas(ns) == 1, timeout=120, what="the replica streaming under the policy")
    ns.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup", "metadata": {"name": "sec-b2"},
              "spec": {"cluster": NAME}})
    backup = wait_for(lambda: (b := ns.json("get", "vbackup", "sec-b2"))
                      and b.get("status", {}).get("phase") in ("Completed", "Failed") and b,
                      timeout=300, what="backup sec-b2 to finish")
    assert backup["status"]["phase"] == "Completed", backup["status"]

    # Off again: the operator deletes its policy.
    _patch(ns, {"enabled": False})
    wait_for(lambda: _policy(ns) is None, timeout=60, what="the NetworkPolicy deleted")
