"""SDK clients in pods (the engine image holds the SDK): one-shot calls and a write loop.

Clients run inside the cluster because the suite assumes no routing from the host to
Services. Both mount the CA clients trust (a Secret with key `ca.crt`, `NAME-ca` for the
operator's CA) and the token (`NAME-auth`, key `token`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .placement import HOSTNAME_LABEL, pinned_node

__all__ = ["LoopResult", "WriteLoop", "client_outcome", "client_pod", "pod_endpoint", "run_client", "service_endpoint"]

ONE_SHOT = """
import asyncio, sys
from velocity import VelocityPool

async def main(endpoint, op, key, value):
    token = open("/auth/token").read().strip()
    async with VelocityPool(node=endpoint, auth=token, ca="/ca/ca.crt") as vdb:
        if op == "set":
            await vdb.set(key, value)
            print("OK")
        elif op == "fill":  # KEY:i = i for i < VALUE
            n = int(value)
            for start in range(0, n, 200):
                await vdb.mset({f"{key}:{i}": i for i in range(start, min(n, start + 200))})
            print("OK")
        elif op == "count-stale":  # how many of KEY:i = i (i < VALUE) this node holds
            n, match = int(value), 0
            for start in range(0, n, 200):
                chunk = range(start, min(n, start + 200))
                values = await vdb.mget([f"{key}:{i}" for i in chunk], stale_ok=True)
                match += sum(v == i for i, v in zip(chunk, values))
            print("MATCH", match)
        elif op == "wait-setting":  # until this node's INFO has KEY (section.field) = VALUE
            section, name = key.split(".")
            deadline = asyncio.get_running_loop().time() + 240
            while (seen := (await vdb.info()).get(section, {}).get(name)) != value:
                if asyncio.get_running_loop().time() > deadline:
                    sys.exit(f"{key} is still {seen!r}, not {value!r}")
                await asyncio.sleep(1)
            print("SETTING", key, seen)
        else:
            print("GOT", await vdb.get(key))

asyncio.run(main(*sys.argv[1:]))
"""

# Writes KEY:i = i one after the other through one long-lived pool until /work/stop
# exists. A write that fails is retried (same key, same value: idempotent) until it is
# acknowledged or RETRY_S has passed; the latter counts as a failed request. At the end
# every acknowledged key is read back linearizably and the summary is printed as JSON.
LOOP = """
import asyncio, json, os, sys, time
from velocity import VelocityPool

RETRY_S = 30.0

async def main(endpoint, prefix):
    token = open("/auth/token").read().strip()
    errors, kinds, failed, acked = 0, {}, 0, []
    longest, gap_at = 0.0, None
    async with VelocityPool(node=endpoint, auth=token, ca="/ca/ca.crt", pool_size=2, timeout=5) as vdb:
        print("READY", flush=True)
        last_ok = time.monotonic()
        i = 0
        while not os.path.exists("/work/stop"):
            give_up = time.monotonic() + RETRY_S
            while True:
                try:
                    await vdb.set(f"{prefix}:{i}", i)
                except Exception as exc:
                    errors += 1
                    name = type(exc).__name__
                    kinds[name] = kinds.get(name, 0) + 1
                    if time.monotonic() > give_up:
                        failed += 1
                        break
                    await asyncio.sleep(0.1)
                    continue
                now = time.monotonic()
                if now - last_ok > longest:
                    longest, gap_at = now - last_ok, time.time()
                last_ok = now
                acked.append(i)
                if len(acked) % 50 == 0:
                    print("ACKED", len(acked), flush=True)
                break
            i += 1
            await asyncio.sleep(0.02)
        lost = []
        for start in range(0, len(acked), 200):
            chunk = acked[start:start + 200]
            values = await vdb.mget([f"{prefix}:{n}" for n in chunk])
            lost += [n for n, v in zip(chunk, values) if v != n]
    print("RESULT " + json.dumps({"acked": len(acked), "errors": errors, "error_kinds": kinds,
                                  "failed": failed, "longest_gap_s": round(longest, 3),
                                  "gap_at": gap_at, "lost": lost[:50], "lost_count": len(lost)}), flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


def service_endpoint(ns: Kubectl, cluster: str) -> str:
    """The client Service of `cluster` (follows the primary), as the SDK's node URL."""
    return f"vdb://{cluster}.{ns.namespace}.svc:2005"


def pod_endpoint(ns: Kubectl, cluster: str, ordinal: int) -> str:
    """One pod by its stable DNS name (a replica or the primary)."""
    return f"vdb://{cluster}-{ordinal}.{cluster}-headless.{ns.namespace}.svc:2005"


def client_pod(name: str, command: list[str], *, ca_secret: str, auth_secret: str,
               node: str | None = None) -> dict[str, Any]:
    """A restricted pod running `command` with the CA at /ca/ca.crt, the token at
    /auth/token and a writable /work; on node `node` (kubernetes.io/hostname) if given."""
    affinity = {} if node is None else {"nodeSelector": {HOSTNAME_LABEL: node}}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "velocity-e2e-client"}},
        "spec": {
            **affinity,
            "restartPolicy": "Never", "enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client", "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                "command": command,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "volumeMounts": [{"name": "ca", "mountPath": "/ca"}, {"name": "auth", "mountPath": "/auth"},
                                 {"name": "work", "mountPath": "/work"}],
            }],
            "volumes": [{"name": "ca", "secret": {"secretName": ca_secret}},
                        {"name": "auth", "secret": {"secretName": auth_secret}},
                        {"name": "work", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def _finished(ns: Kubectl, name: str, timeout: float) -> tuple[str, str]:
    wait_for(lambda: ns.json("get", "pod", name)["status"].get("phase") in ("Succeeded", "Failed"),
             timeout=timeout, what=f"client pod {name} to finish")
    phase = ns.json("get", "pod", name)["status"]["phase"]
    return phase, ns.run("logs", name)


def client_outcome(ns: Kubectl, cluster: str, name: str, endpoint: str, op: str, key: str, value: str = "",
                   *, ca_secret: str | None = None) -> tuple[str, str]:
    """One operation through the SDK in a pod (set, get, fill, count-stale, wait-setting: see ONE_SHOT):
    its final phase and its output."""
    ns.apply(client_pod(name, ["python3", "-c", ONE_SHOT, endpoint, op, key, value],
                        ca_secret=ca_secret or f"{cluster}-ca", auth_secret=f"{cluster}-auth", node=pinned_node(ns)))
    phase, logs = _finished(ns, name, 300 if op == "wait-setting" else 120)
    ns.run("delete", "pod", name, "--wait=false")
    return phase, logs


def run_client(ns: Kubectl, cluster: str, name: str, endpoint: str, op: str, key: str, value: str = "",
               *, ca_secret: str | None = None) -> str:
    """client_outcome() that must succeed; returns the output."""
    phase, logs = client_outcome(ns, cluster, name, endpoint, op, key, value, ca_secret=ca_secret)
    assert phase == "Succeeded", f"client {name} ({op} {key}) failed:\n{logs}"
    return logs


@dataclass(frozen=True)
class LoopResult:
    acked: int
    errors: int
    error_kinds: dict[str, int]
    failed: int
    longest_gap_s: float
    gap_at: float | None
    lost: list[int]
    lost_count: int


class WriteLoop:
    """The LOOP client in pod `name`, writing `prefix:i` through `endpoint` until stopped."""

    def __init__(self, ns: Kubectl, cluster: str, name: str, endpoint: str) -> None:
        self.ns, self.name = ns, name
        ns.apply(client_pod(name, ["python3", "-c", LOOP, endpoint, name],
                            ca_secret=f"{cluster}-ca", auth_secret=f"{cluster}-auth", node=pinned_node(ns)))
        wait_for(lambda: "READY" in ns.run("logs", name), timeout=120, what=f"write loop {name} connected")

    def acked(self) -> int:
        """Writes acknowledged so far (the loop logs every 50th)."""
        counts = [int(ln.split()[1]) for ln in self.ns.run("logs", self.name).splitlines()
                  if ln.startswith("ACKED ")]
        return max(counts, default=0)

    def wait_acked(self, at_least: int, timeout: float = 120) -> None:
        wait_for(lambda: self.acked() >= at_least, timeout=timeout,
                 what=f"write loop {self.name} to have {at_least} acknowledged writes")

    def stop(self) -> LoopResult:
        self.ns.exec(self.name, "python3", "-c", "open('/work/stop', 'w').close()")
        phase, logs = _finished(self.ns, self.name, 180)
        self.ns.run("delete", "pod", self.name, "--wait=false")
        line = next((ln for ln in logs.splitlines() if ln.startswith("RESULT ")), None)
        assert phase == "Succeeded" and line is not None, f"write loop {self.name} ended {phase}:\n{logs}"
        return LoopResult(**json.loads(line.removeprefix("RESULT ")))
