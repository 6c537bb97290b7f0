"""Integration tests proving the tier-1 API server behaves like a real one."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .apiserver_tier import ApiServerTier
from .binaries import find_bin_dir
from .errors import KubeApiError, KubeTierError
from .kube_api import KubeAPI

GROUP = "tier1.velocity.dev"


def wait_for(condition: Callable[[], bool], *, timeout: float = 60, what: str) -> None:
    """Poll `condition` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def status_of(call: Callable[[], Any]) -> int:
    """The HTTP status `call` gets: 200 when it succeeds."""
    try:
        call()
    except KubeApiError as exc:
        return exc.status
    return 200


@pytest.fixture
def namespace(kube_api: KubeAPI) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube_api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    kube_api.request("DELETE", f"/api/v1/namespaces/{name}")


def test_namespace_is_created_and_finalised(kube_api: KubeAPI) -> None:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    created = kube_api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert created["status"]["phase"] == "Active"

    # The service-account controller (kube-controller-manager) fills new namespaces.
    def has_default_sa() -> bool:
        accounts = kube_api.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts")["items"]
        return any(sa["metadata"]["name"] == "default" for sa in accounts)

    wait_for(has_default_sa, what="the default service account")
    kube_api.request("DELETE", f"/api/v1/namespaces/{name}")
    wait_for(lambda: status_of(lambda: kube_api.request("GET", f"/api/v1/namespaces/{name}")) == 404,
             what="the namespace controller to finalise the namespace")


def test_kubectl_and_versions(kube_api: KubeAPI) -> None:
    out = kube_api.kubectl("version", "-o", "json")
    assert '"gitVersion": "v1.' in out
    assert "v0.0.0" not in out  # binaries are stamped with their release
    assert kube_api.request("GET", "/version")["gitVersion"].startswith("v1.")


def test_rbac_is_enforced(kube_api: KubeAPI, namespace: str) -> None:
    user = f"user-{uuid.uuid4().hex[:6]}"
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    assert status_of(lambda: kube_api.request("GET", configmaps, impersonate=user)) == 403

    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube_api.request("POST", f"{rbac}/roles", {
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    })
    kube_api.request("POST", f"{rbac}/rolebindings", {
        "metadata": {"name": "read-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })
    # The authorizer's cache follows the binding within a moment.
    wait_for(lambda: status_of(lambda: kube_api.request("GET", configmaps, impersonate=user)) == 200,
             what="the RoleBinding to take effect")
    # Granted verbs only, and only in that namespace.
    assert status_of(lambda: kube_api.request(
        "POST", configmaps, {"metadata": {"name": "x"}}, impersonate=user)) == 403
    assert status_of(lambda: kube_api.request(
        "GET", "/api/v1/namespaces/default/configmaps", impersonate=user)) == 403


def test_crd_with_schema_and_status_subresource(kube_api: KubeAPI, namespace: str) -> None:
    plural = f"widgets{uuid.uuid4().hex[:6]}"
    crd_name = f"{plural}.{GROUP}"
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    kube_api.request("POST", crds, {
        "metadata": {"name": crd_name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": f"W{plural}"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                    },
                }},
            }],
        },
    })
    try:
        def established() -> bool:
            # A new CRD's status may say "conditions": null until the controller runs.
            conditions = kube_api.request("GET", f"{crds}/{crd_name}").get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, what="the CRD to be Established")
        objects = f"/apis/{GROUP}/v1/namespaces/{namespace}/{plural}"
        body = {"apiVersion": f"{GROUP}/v1", "kind": f"W{plural}", "metadata": {"name": "one"}, "spec": {"size": 3}}
        # Discovery of a new CRD can lag Established by a moment.
        wait_for(lambda: status_of(lambda: kube_api.request("POST", objects, body)) == 200,
                 what="the first custom object to be accepted")

        # Schema validation is enforced by the real API server.
        bad = {**body, "metadata": {"name": "two"}, "spec": {"size": 0}}
        assert status_of(lambda: kube_api.request("POST", objects, bad)) == 422

        # The main resource ignores status; the status subresource ignores spec.
        kube_api.request("PATCH", f"{objects}/one", {"status": {"phase": "Ignored"}})
        assert "status" not in kube_api.request("GET", f"{objects}/one")
        kube_api.request("PATCH", f"{objects}/one/status", {"spec": {"size": 9}, "status": {"phase": "Ready"}})
        obj = kube_api.request("GET", f"{objects}/one")
        assert obj["status"] == {"phase": "Ready"}
        assert obj["spec"] == {"size": 3}
    finally:
        kube_api.request("DELETE", f"{crds}/{crd_name}")


def test_owner_reference_garbage_collection(kube_api: KubeAPI, namespace: str) -> None:
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = kube_api.request("POST", configmaps, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kube_api.request("POST", configmaps, {"metadata": {"name": "child", "ownerReferences": [reference]}})
    kube_api.request("DELETE", f"{configmaps}/owner", {"propagationPolicy": "Background"})
    wait_for(lambda: status_of(lambda: kube_api.request("GET", f"{configmaps}/child")) == 404,
             timeout=90, what="the garbage collector to delete the child")


def test_stop_ends_every_process(tmp_path: Path) -> None:
    """A second, private tier: after stop() its processes are gone and its port is closed."""
    tier = ApiServerTier.start(tmp_path)
    try:
        api = tier.api
        pids = [p.popen.pid for p in tier._processes]
        assert len(pids) == 3
        api.request("GET", "/api/v1/namespaces/default")
    finally:
        tier.stop()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} survived stop()"
    with pytest.raises(OSError):
        api.request("GET", "/healthz", timeout=5)
    with pytest.raises(KubeTierError):
        _ = tier.api
    tier.stop()  # idempotent


def test_missing_binaries_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOCITY_K8S_BIN_DIR", str(tmp_path))
    with pytest.raises(KubeTierError, match="kube-apiserver"):
        find_bin_dir()
