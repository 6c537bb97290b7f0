"""SDK clients in pods: one-shot calls and write loops.

The Python SDK runs from the engine image, which holds it; the Rust and Node.js SDKs'
e2e clients from velocity/clients:dev (hack/images/build.sh, docs/images.md):
`velocity-e2e-client` (clients/rust/examples/e2e_client.rs) and
`node /opt/velocity-clients/node/e2e-writer.js` (clients/node/examples/e2e-writer.ts).
Clients run inside the cluster because the suite assumes no routing from the host to
Services. They mount the CA clients trust (a Secret with key `ca.crt`, `NAME-ca` for the
operator's CA) and the token (`NAME-auth`, key `token`); the Rust and Node clients also get
the token as VDB_TOKEN from that Secret and the CA's path as VDB_CA, which their SDKs read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .placement import HOSTNAME_LABEL, pinned_node

__all__ = ["CLIENTS_IMAGE", "LoopResult", "WriteLoop", "client_outcome", "client_pod", "pod_endpoint",
           "run_client", "sdk_loop", "service_endpoint"]

CLIENTS_IMAGE = os.environ.get("VELOCITY_CLIENTS_IMAGE", "velocity/clients:dev")

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
               node: str | None = None, image: str = ENGINE_IMAGE,
               env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A restricted pod running `command` (in `image`, with `env`) with the CA at
    /ca/ca.crt, the token at /auth/token and a writable /work; on node `node`
    (kubernetes.io/hostname) if given."""
    affinity = {} if node is None else {"nodeSelector": {HOSTNAME_LABEL: node}}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "velocity-e2e-client"}},
        "spec": {
            **affinity,
            "restartPolicy": "Never", "enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": PULL_POLICY,
                "command": command, "env": env or [],
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
    """A write loop's RESULT line. `errors` failed attempts (each retried), `failed` keys
    never acknowledged; the Rust and Node clients also split `errors` into `unknown`
    (outcome unknown) and `refused` (failed without effect) and read every acknowledged
    write back at once (`reads`, `stale_read_count`, `read_errors`)."""

    acked: int
    errors: int
    error_kinds: dict[str, int]
    failed: int
    longest_gap_s: float
    gap_at: float | None
    lost: list[int]
    lost_count: int
    client: str = "python"
    unknown: int | None = None
    refused: int | None = None
    reads: int = 0
    stale_reads: list[str] = field(default_factory=list)
    stale_read_count: int = 0
    read_errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> LoopResult:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


def sdk_loop(ns: Kubectl, cluster: str, name: str, sdk: str) -> WriteLoop:
    """The Rust (`sdk="rust"`) or Node.js (`sdk="node"`) write loop of velocity/clients:dev
    in pod `name`, writing `name:i` through the client Service of `cluster`."""
    endpoint = service_endpoint(ns, cluster)
    commands = {"rust": ["velocity-e2e-client", name],
                "node": ["node", "/opt/velocity-clients/node/e2e-writer.js", name]}
    env: list[dict[str, Any]] = [
        {"name": "VDB_ENDPOINT" if sdk == "rust" else "VDB_NODE", "value": endpoint},
        {"name": "VDB_CA", "value": "/ca/ca.crt"},
        {"name": "VDB_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{cluster}-auth", "key": "token"}}},
    ]
    return WriteLoop(ns, cluster, name, endpoint, command=commands[sdk], image=CLIENTS_IMAGE, env=env)


class WriteLoop:
    """A write loop in pod `name`, writing `prefix:i` through `endpoint` until stopped: the
    LOOP client (Python SDK), or `command` in `image` (sdk_loop) with the same output."""

    def __init__(self, ns: Kubectl, cluster: str, name: str, endpoint: str, *,
                 command: list[str] | None = None, image: str = ENGINE_IMAGE,
                 env: list[dict[str, Any]] | None = None) -> None:
        self.ns, self.name = ns, name
        ns.apply(client_pod(name, command or ["python3", "-c", LOOP, endpoint, name],
                            ca_secret=f"{cluster}-ca", auth_secret=f"{cluster}-auth", node=pinned_node(ns),
                            image=image, env=env))
        wait_for(lambda: self._ready(), timeout=120, what=f"write loop {name} connected")

    def _ready(self) -> bool:
        if self.ns.json("get", "pod", self.name)["status"].get("phase") in ("Succeeded", "Failed"):
            raise AssertionError(f"write loop {self.name} ended before it connected:\n"
                                 f"{self.ns.run('logs', self.name, check=False)}")
        return "READY" in self.ns.run("logs", self.name)

    def acked(self) -> int:
        """Writes acknowledged so far (the loop logs every 50th)."""
        counts = [int(ln.split()[1]) for ln in self.ns.run("logs", self.name).splitlines()
                  if ln.startswith("ACKED ")]
        return max(counts, default=0)

    def wait_acked(self, at_least: int, timeout: float = 120) -> None:
        wait_for(lambda: self.acked() >= at_least, timeout=timeout,
                 what=f"write loop {self.name} to have {at_least} acknowledged writes")

    def stop(self) -> LoopResult:
        self.ns.exec(self.name, "touch", "/work/stop")
        phase, logs = _finished(self.ns, self.name, 180)
        self.ns.run("delete", "pod", self.name, "--wait=false")
        line = next((ln for ln in logs.splitlines() if ln.startswith("RESULT ")), None)
        assert phase == "Succeeded" and line is not None, f"write loop {self.name} ended {phase}:\n{logs}"
        return LoopResult.parse(json.loads(line.removeprefix("RESULT ")))
