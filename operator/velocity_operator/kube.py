"""The only module that talks to the Kubernetes API (besides kopf itself).

Objects are plain dicts. Writes use server-side apply with the field manager
`velocity-operator`, so the operator owns exactly the fields it sets and never fights
a user (or another controller) over the others; `force=True` takes back fields another
manager changed that the operator does own (drift correction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .names import FIELD_MANAGER

__all__ = ["ApiError", "Kube", "Resource", "connect", "resource_for"]


class ApiError(RuntimeError):
    """A request the API server refused; `status` and `reason` come from its answer."""

    def __init__(self, method: str, path: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = prefix
        if self.namespaced and namespace is not None:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if sub is not None:
            path += f"/{sub}"
        return path


_KINDS: dict[tuple[str, str], Resource] = {
    (r.api_version, kind): r
    for kind, r in {
        "ConfigMap": Resource("v1", "configmaps"),
        "Secret": Resource("v1", "secrets"),
        "Service": Resource("v1", "services"),
        "Pod": Resource("v1", "pods"),
        "PersistentVolumeClaim": Resource("v1", "persistentvolumeclaims"),
        "Namespace": Resource("v1", "namespaces", namespaced=False),
        "ServiceAccount": Resource("v1", "serviceaccounts"),
        "Role": Resource("rbac.authorization.k8s.io/v1", "roles"),
        "RoleBinding": Resource("rbac.authorization.k8s.io/v1", "rolebindings"),
        "Lease": Resource("coordination.k8s.io/v1", "leases"),
        "StatefulSet": Resource("apps/v1", "statefulsets"),
        "Job": Resource("batch/v1", "jobs"),
        "PodDisruptionBudget": Resource("policy/v1", "poddisruptionbudgets"),
        "NetworkPolicy": Resource("networking.k8s.io/v1", "networkpolicies"),
        "VelocityCluster": Resource("vdb.io/v1alpha1", "velocityclusters"),
        "VelocityBackup": Resource("vdb.io/v1alpha1", "velocitybackups"),
        "PodMonitor": Resource("monitoring.coreos.com/v1", "podmonitors"),
        "Certificate": Resource("cert-manager.io/v1", "certificates"),
    }.items()
}


def resource_for(api_version: str, kind: str) -> Resource:
    try:
        return _KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None


async def connect(kubeconfig: str | None = None, *, context: str | None = None) -> Kube:
    """A client from `kubeconfig`, else the in-cluster service account, else ~/.kube/config
    ($KUBECONFIG); `context` picks a kubeconfig context other than the current one."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return Kube(client.ApiClient(configuration))


class Kube:
    """Thin async REST helpers over one `ApiClient`; close() when done."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    async def close(self) -> None:
        await self._api.close()

    async def _call(self, method: str, path: str, *, body: Any = None,
                    query: list[tuple[str, str]] | None = None,
                    content_type: str = "application/json") -> dict[str, Any]:
        try:
            # _preload_content=False: the raw aiohttp response, whatever its status (the
            # generated client only raises for non-2xx when it preloads and deserialises).
            response = await self._api.call_api(
                path, method, query_params=query or [], body=body,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False,
            )
        except ApiException as exc:  # the request could not be made at all
            raise ApiError(method, path, int(exc.status or 0), str(exc.reason), str(exc.body or "")) from None
        try:
            raw = await response.read()
            status = int(response.status)
        finally:
            response.release()
        if not 200 <= status <= 299:
            reason, message = str(getattr(response, "reason", "") or status), raw.decode(errors="replace")[:500]
            try:
                payload = json.loads(raw)
                reason = str(payload.get("reason") or reason)
                message = str(payload.get("message") or message)
            except (TypeError, ValueError, AttributeError):
                pass
            raise ApiError(method, path, status, reason, message)
        result: dict[str, Any] = json.loads(raw) if raw else {}
        return result

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply `obj` (create or update the fields the operator owns)."""
        meta = obj["metadata"]
        res = resource_for(obj["apiVersion"], obj["kind"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
        return await self._call("PATCH", res.path(meta.get("namespace"), meta["name"]), body=obj,
                                query=query, content_type="application/apply-patch+yaml")

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", resource_for(api_version, kind).path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = await self._call("GET", resource_for(api_version, kind).path(namespace), query=query)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create `obj`; None if it already exists (create-once objects such as Secrets)."""
        res = resource_for(obj["apiVersion"], obj["kind"])
        try:
            return await self._call("POST", res.path(obj["metadata"].get("namespace")), body=obj,
                                    query=[("fieldManager", FIELD_MANAGER)])
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT `obj` (it must carry metadata.resourceVersion: optimistic concurrency)."""
        res = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return await self._call("PUT", res.path(meta.get("namespace"), meta["name"]), body=obj,
                                query=[("fieldManager", FIELD_MANAGER)])

    async def merge_patch(self, api_version: str, kind: str, namespace: str | None, name: str,
                          patch: dict[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        res = resource_for(api_version, kind)
        return await self._call("PATCH", res.path(namespace, name, subresource), body=patch,
                                query=[("fieldManager", FIELD_MANAGER)],
                                content_type="application/merge-patch+json")

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
                     *, propagation: str = "Background") -> bool:
        """Delete; False if it was already gone."""
        try:
            await self._call("DELETE", resource_for(api_version, kind).path(namespace, name),
                             body={"propagationPolicy": propagation})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def has_api(self, group_version: str) -> bool:
        """Whether the API server serves `group_version` (e.g. monitoring.coreos.com/v1)."""
        try:
            await self._call("GET", f"/apis/{group_version}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
