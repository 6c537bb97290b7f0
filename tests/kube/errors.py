"""Typed errors of the tier-1 harness."""

from __future__ import annotations

from typing import Any

__all__ = ["KubeApiError", "KubeTierError"]


class KubeTierError(RuntimeError):
    """The tier could not be started (or a binary is missing); the message says why."""


class KubeApiError(RuntimeError):
    """The API server answered a request with an HTTP error status.

    `status` is the HTTP code, `body` the decoded JSON answer (a metav1.Status) when it
    was JSON, else the raw text under the key "text".
    """

    def __init__(self, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        reason = body.get("message") or body.get("text") or ""
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
