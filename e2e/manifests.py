"""Objects the e2e tests deploy, built as plain dicts (no cluster needed to read them)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ENGINE_IMAGE", "PULL_POLICY", "engine_objects", "sdk_client_pod"]

ENGINE_IMAGE = os.environ.get("VELOCITY_ENGINE_IMAGE", "velocity/engine:dev")
PULL_POLICY = os.environ.get("VELOCITY_IMAGE_PULL_POLICY", "IfNotPresent")
APP = "velocity-e2e"
V_PORT = 2005
METRICS_PORT = 9105


def engine_objects(namespace: str, name: str = APP) -> list[dict[str, Any]]:
    """A one-replica engine StatefulSet, its headless Service and a client Service.

    The pod runs as the image's non-root user with a read-only root filesystem;
    /data is a PersistentVolumeClaim of the default StorageClass, /tmp an emptyDir.
    Probes hit the engine's plain-HTTP health endpoints on the metrics port.
    """
    labels = {"app.kubernetes.io/name": name}
    fqdn = f"{name}-0.{name}.{namespace}.svc.cluster.local"
    container = {
        "name": "engine",
        "image": ENGINE_IMAGE,
        "imagePullPolicy": PULL_POLICY,
        "args": [
            "--data-dir", "/data", "--host", "0.0.0.0", "--port", str(V_PORT),
            "--metrics-host", "0.0.0.0", "--metrics-port", str(METRICS_PORT),
            "--tls-san", fqdn, "--tls-san", f"{name}-client.{namespace}.svc",
        ],
        "ports": [{"name": "vproto", "containerPort": V_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"},
                           "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"},
                          "periodSeconds": 5, "failureThreshold": 6},
        "securityContext": {
            "runAsNonRoot": True, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    return [
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True,
                     "ports": [{"name": "vproto", "port": V_PORT}]},
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{name}-client", "namespace": namespace, "labels": labels},
            "spec": {"selector": labels,
                     "ports": [{"name": "vproto", "port": V_PORT, "targetPort": "vproto"},
                               {"name": "metrics", "port": METRICS_PORT,
                                "targetPort": "metrics"}]},
        },
        {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "securityContext": {"fsGroup": 10001},
                        "enableServiceLinks": False,
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "256Mi"}}},
                }],
            },
        },
    ]


# Run by sdk_client_pod: one SET and GET through the Python SDK over TLS with the token.
SDK_CLIENT = """
import asyncio, sys
from velocity import VelocityPool

async def main(endpoint):
    token = open("/credentials/auth-token").read().strip()
    async with VelocityPool(node=endpoint, auth=token, ca="/credentials/ca.crt") as vdb:
        await vdb.set("from-pod", "in-cluster")
        print("GOT", await vdb.get("from-pod"))

asyncio.run(main(sys.argv[1]))
"""


def sdk_client_pod(namespace: str, *, secret: str, service: str, name: str = "sdk-client") -> dict[str, Any]:
    """A pod (from the engine image, which holds the SDK) that talks to `service` once.

    The CA and token come from `secret` (keys ca.crt and auth-token); the endpoint is
    the Service's cluster DNS name, which the engine's certificate carries as a SAN.
    """
    endpoint = f"vdb://{service}.{namespace}.svc:{V_PORT}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "containers": [{
                "name": "client", "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                "command": ["python3", "-c", SDK_CLIENT, endpoint],
                "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "credentials", "mountPath": "/credentials", "readOnly": True}],
            }],
            "volumes": [{"name": "credentials", "secret": {"secretName": secret}}],
        },
    }
