"""Writing kubeconfig files for client-certificate users."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .pki import CertPair

__all__ = ["write_kubeconfig"]


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: CertPair, user: str) -> Path:
    """Write a single-context kubeconfig with the certificates embedded, mode 0600.

    JSON is valid YAML, so kubectl, client-go, kopf and kubernetes_asyncio all read it;
    embedding keeps the file usable after the PEM files move.
    """

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "velocity", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)},
            }
        ],
        "contexts": [{"name": "velocity", "context": {"cluster": "velocity", "user": user}}],
        "current-context": "velocity",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
