"""A thin kubectl wrapper for the e2e suite: every call goes through the kubeconfig.

The suite assumes nothing about the cluster beyond the kubeconfig: no cluster-IP
routing from the host (kind does not have it), no node access. Services are reached
with `kubectl port-forward`. kubectl comes from $VELOCITY_KUBECTL (make e2e points it
at the cached build) or PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Kubectl", "KubectlError", "wait_for"]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has its stderr."""


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str,
             interval: float = 1.0) -> Any:
    """Poll `condition` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (KubectlError, OSError) as exc:  # transient while objects appear
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


class Kubectl:
    """kubectl bound to one kubeconfig (and optionally one namespace)."""

    def __init__(self, kubeconfig: str, namespace: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        binary = os.environ.get("VELOCITY_KUBECTL") or shutil.which("kubectl")
        if not binary:
            raise KubectlError("kubectl not found: set VELOCITY_KUBECTL or put kubectl on PATH")
        self.binary = binary

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.kubeconfig, namespace)

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        argv = [self.binary, "--kubeconfig", self.kubeconfig]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        return argv + list(args)

    def run(self, *args: str, input: str | None = None, timeout: float = 120,
            check: bool = True) -> str:
        done = subprocess.run(self._argv(args), input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: exit {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def apply(self, *objects: dict[str, Any]) -> None:
        manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.run("apply", "-f", "-", input=json.dumps(manifest))

    def exec(self, pod: str, *command: str) -> str:
        return self.run("exec", pod, "--", *command)

    @contextlib.contextmanager
    def port_forward(self, target: str, remote_port: int, *,
                     timeout: float = 30) -> Iterator[int]:
        """Forward a free local port to `target` (e.g. service/x); yield the local port."""
        process = subprocess.Popen(
            self._argv(("port-forward", "--address", "127.0.0.1", target, f":{remote_port}")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + timeout
            port = None
            while port is None:
                line = process.stdout.readline()
                if not line:
                    err = process.stderr.read() if process.stderr else ""
                    raise KubectlError(f"port-forward {target} exited: {err.strip()}")
                match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match.group(1))
                elif time.monotonic() > deadline:
                    raise TimeoutError(f"port-forward {target}: no port after {timeout}s")
            yield port
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pod_ready(self, name: str) -> dict[str, Any] | None:
        """The pod if it exists, is not terminating and is Ready, else None."""
        try:
            pod = self.json("get", "pod", name)
        except KubectlError:
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return None
        conditions = pod.get("status", {}).get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return pod if ready else None

    def describe_failure(self) -> str:
        """Pods, events and container logs of the namespace, for failure reports."""
        parts = []
        for args in (("get", "pods,pvc,svc", "-o", "wide"),
                     ("get", "events", "--sort-by=.lastTimestamp"),
                     ("describe", "pods")):
            parts.append(self.run(*args, check=False))
        for pod in self.run("get", "pods", "-o", "name", check=False).split():
            parts.append(f"--- logs {pod}\n"
                         + self.run("logs", pod, "--all-containers", "--tail=50", check=False))
        return "\n".join(parts)
