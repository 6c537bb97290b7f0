"""`KubeAPI`: how a test reaches the tier's API server, and a tiny JSON client for it.

The fields are plain paths and a URL so that any client can be pointed at the server:
kopf / kubernetes_asyncio read `kubeconfig`; `ssl_context()` suits aiohttp or urllib;
`kubectl()` runs the kubectl of the same release. `request()` is a dependency-free JSON
client (standard library only) good enough for tests: it raises `KubeApiError` with the
API server's Status message on any HTTP error.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import KubeApiError

__all__ = ["KubeAPI"]

# Content types the API server accepts for PATCH, by the name tests use.
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class KubeAPI:
    """The API server of a running tier, reached as cluster-admin (group system:masters)."""

    kubeconfig: Path
    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    bin_dir: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that verifies the server and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        patch: str = "merge",
        impersonate: str | None = None,
        timeout: float = 30,
    ) -> Any:
        """Send one request to `path` (e.g. "/api/v1/namespaces"); return the decoded JSON.

        `body` is JSON-encoded; PATCH uses the content type named by `patch` (merge, json,
        strategic, apply). `impersonate` sends the request as that user (admin may).
        """
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = PATCH_TYPES[patch] if method == "PATCH" else "application/json"
        if impersonate:
            headers["Impersonate-User"] = impersonate
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = {"text": text}
            raise KubeApiError(method, path, exc.code, decoded) from None
        return json.loads(raw) if raw else None

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run the cached kubectl against this API server and return its stdout."""
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return done.stdout
