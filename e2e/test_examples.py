"""The numbered examples (examples/*.yaml) applied as users apply them, each reaching
Ready and serving TLS + token traffic through the SDK.

The test sets only spec.image and spec.imagePullPolicy (the local cluster never pulls)
and spec.nodeSelector (e2e/placement.py); the files stay what users copy. 02's Secrets
are made by running the openssl and kubectl commands written in its comments, so the
instructions are tested too. 03 (S3) is applied by e2e/test_backup_s3.py, which runs an
S3 server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import REPO, OperatorProcess, running_operator
from .placement import HOSTNAME_LABEL, pinned_node
from .sdk_pods import client_outcome, client_pod, pod_endpoint, run_client, service_endpoint

EXAMPLES = REPO / "examples"
READY_TARGET_S = 60.0


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


def example_objects(name: str, node: str) -> list[dict[str, Any]]:
    """The objects of examples/NAME, with the image settings of this cluster, on `node`."""
    objects = [o for o in yaml.safe_load_all((EXAMPLES / name).read_text()) if o]
    for obj in objects:
        assert "namespace" not in obj["metadata"], f"{name}: examples go into the current namespace"
        if obj["kind"] == "VelocityCluster":
            obj["spec"]["image"] = ENGINE_IMAGE
            obj["spec"]["imagePullPolicy"] = PULL_POLICY
            obj["spec"]["nodeSelector"] = {HOSTNAME_LABEL: node}  # e2e/placement.py says why
    return objects


def commented_commands(name: str) -> list[str]:
    """The `#   $ command` lines of an example's comments, in order."""
    return [m.group(1) for line in (EXAMPLES / name).read_text().splitlines()
            if (m := re.match(r"#\s+\$ (.+)$", line))]


def wait_ready(ns: Kubectl, cluster: str, timeout: int = 300) -> None:
    ns.run("wait", "--for=condition=Ready", f"vc/{cluster}", f"--timeout={timeout}s", timeout=timeout + 20)


def test_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert files, "no examples"
    for f in files:
        assert f in readme, f"examples/README.md does not mention {f}"
    assert "03-backup-s3.yaml" in readme


def test_01_minimal(namespace: Kubectl, operator: OperatorProcess) -> None:
    start = time.monotonic()
    namespace.apply(*example_objects("01-minimal.yaml", pinned_node(namespace)))
    wait_ready(namespace, "alpha")
    elapsed = time.monotonic() - start
    print(f"\nexamples/01-minimal.yaml apply -> Ready (3 replicas): {elapsed:.1f}s (target {READY_TARGET_S:.0f}s)")
    vc = namespace.json("get", "vc", "alpha")
    assert vc["status"]["readyReplicas"] == 3
    assert vc["spec"]["backup"]["schedule"] == "0 * * * *"
    assert "OK" in run_client(namespace, "alpha", "ex1-set", service_endpoint(namespace, "alpha"),
                              "set", "example", "01")
    assert "GOT 01" in run_client(namespace, "alpha", "ex1-get", pod_endpoint(namespace, "alpha", 2),
                                  "get", "example")


def test_02_tls_own_certificate(namespace: Kubectl, operator: OperatorProcess, tmp_path: Path) -> None:
    # The commands of the example's comments, run in an empty directory against a
    # kubeconfig whose current namespace is the test's.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(namespace.kubeconfig).read_text())
    kubectl = Kubectl(str(kubeconfig))
    kubectl.run("config", "set-context", "--current", f"--namespace={namespace.namespace}")
    work = tmp_path / "certs"
    work.mkdir()
    commands = commented_commands("02-tls-own-cert.yaml")
    assert any(c.startswith("openssl x509") for c in commands), commands
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "PATH": f"{Path(namespace.binary).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"the commands of 02-tls-own-cert.yaml failed:\n{script}\n{done.stderr}"
    assert json.loads(namespace.run("get", "secret", "bravo-server-cert", "-o", "json"))["type"] == "kubernetes.io/tls"

    namespace.apply(*example_objects("02-tls-own-cert.yaml", pinned_node(namespace)))
    wait_ready(namespace, "bravo")
    # The pods serve the user's certificate: the client trusts only the user's CA ...
    endpoint = service_endpoint(namespace, "bravo")
    assert "OK" in run_client(namespace, "bravo", "ex2-set", endpoint, "set", "own-cert", "yes",
                              ca_secret="bravo-client-ca")
    assert "GOT yes" in run_client(namespace, "bravo", "ex2-get", pod_endpoint(namespace, "bravo", 0),
                                   "get", "own-cert", ca_secret="bravo-client-ca")
    # ... and a client trusting another CA (the operator's, of cluster alpha) is refused.
    phase, logs = client_outcome(namespace, "bravo", "ex2-wrong-ca", endpoint, "get", "own-cert",
                                 ca_secret="alpha-ca")
    # The SDK reports it as ssl's CERTIFICATE_VERIFY_FAILED or as its own TLSError.
    assert phase == "Failed" and ("CERTIFICATE_VERIFY_FAILED" in logs or "TLSError" in logs), logs
    # The operator did not issue anything of its own for bravo.
    assert not namespace.run("get", "secret", "bravo-ca", "bravo-tls", "--ignore-not-found", "-o", "name")
    served = namespace.json("get", "vc", "bravo")["status"]["certificate"]
    assert served["secretName"] == "bravo-server-cert", served
    not_after = x509.load_pem_x509_certificate((work / "tls.crt").read_bytes()).not_valid_after_utc
    assert served["notAfter"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), (served, not_after)


def _claim_on_node(ns: Kubectl, claim: str, node: str) -> None:
    """Create `claim` (as the operator would: 5Gi, RWO) and bind it on `node` with a pod
    that mounts it: with a WaitForFirstConsumer StorageClass of node-local volumes, a
    claim first used by the backup Job on another node could not be mounted by the
    restored pods pinned to `node`."""
    ns.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
              "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}})
    binder = client_pod(f"bind-{claim}", ["python3", "-c", "pass"], ca_secret="alpha-ca",
                        auth_secret="alpha-auth", node=node)
    binder["spec"]["volumes"].append({"name": "claim", "persistentVolumeClaim": {"claimName": claim}})
    binder["spec"]["containers"][0]["volumeMounts"].append({"name": "claim", "mountPath": "/claim"})
    ns.apply(binder)
    wait_for(lambda: ns.json("get", "pvc", claim)["status"].get("phase") == "Bound", timeout=120,
             what=f"claim {claim} bound on {node}")
    ns.run("delete", "pod", binder["metadata"]["name"], "--wait=true", "--timeout=60s", timeout=90)


def test_04_restore(namespace: Kubectl, operator: OperatorProcess) -> None:
    assert "OK" in run_client(namespace, "alpha", "ex4-set", service_endpoint(namespace, "alpha"),
                              "set", "restore-me", "precious")
    _claim_on_node(namespace, "alpha-backups", pinned_node(namespace))
    namespace.apply(*example_objects("04-restore.yaml", pinned_node(namespace)))
    backup = wait_for(lambda: (b := namespace.json("get", "vbackup", "alpha-backup-1"))
                      and b.get("status", {}).get("phase") in ("Completed", "Failed") and b,
                      timeout=300, what="backup alpha-backup-1 to finish")
    assert backup["status"]["phase"] == "Completed", backup["status"]
    wait_ready(namespace, "alpha-restored")
    for key, value in (("restore-me", "precious"), ("example", "01")):
        assert f"GOT {value}" in run_client(namespace, "alpha-restored", f"ex4-get-{key}",
                                            service_endpoint(namespace, "alpha-restored"), "get", key)
