"""Cluster-level failover under an SDK write load (issue 5): the primary's pod is deleted,
then the primary's node is lost.

One VelocityCluster `fo` in sync mode with syncReplicas 1 (a write is acknowledged once
a replica has it): first 2 pods, spread over two nodes by the default preferred
anti-affinity, then scaled to 3 while the node of one of them is cordoned, so that one
node holds a single pod ("lone") and the other two. Three pods, not two: with two, losing
one leaves the primary without a replica, and in sync mode it then refuses every write
(NOT_ENOUGH_REPLICAS, by design: no silent degradation) until the lost pod is back, so
"writes succeed again" would only measure how fast the lost pod returns. A client pod writes through the
client Service with the Python SDK (three writers, one pool each) and probes the Service
with a fresh connection every 0.25 s; every acknowledgement and probe is logged with its
wall-clock time (pods share the host's clock). After each failover the client reads every
acknowledged write back through the Service and from each pod, and the test measures:

- time from the deletion / node stop until writes are acknowledged again (target 10 s),
- acknowledged writes lost (must be 0 in sync mode),
- when the Lease, the role label, status.currentPrimary and the Service's endpoints moved.

Node loss needs a way to stop a node: `--node-control CMD` (`make e2e` passes the local
cluster's hack/cluster/node.sh; `CMD stop|start|status NODE`). Without it that test is
skipped with the reason, and so is the whole module on a cluster with one schedulable
node (kind's default here); with it, a missing second node fails the module.
Run: `make e2e E2E_ARGS="e2e/test_failover.py -s"`.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .cluster_state import all_ready, primary, state
from .kube import Kubectl, KubectlError, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import OperatorProcess, running_operator

CLUSTER = "fo"
TARGET_S = 10.0  # issue 5: writes acknowledged again within 10 s
HARD_LIMIT_S = 2 * TARGET_S  # what fails the test on a loaded shared machine; the figure is printed
WRITERS = 3

# The load client. Args: SERVICE_ENDPOINT WRITERS POD_ENDPOINT... Logs
#   A <time> <key>            an acknowledged write
#   E <time> <writer> <error> a failed write (outcome unknown: never counted as acknowledged)
#   P <time> <role> <node>    a fresh connection through the Service, and who answered
# until /work/stop exists, then reads every acknowledged write back (through the Service,
# linearizable; and from each pod, stale reads of its own copy, retried while it catches
# up), collects each pod's replication position and prints RESULT {json}.
CLIENT = r"""
import asyncio, json, os, sys, time
from velocity import VelocityPool

CA, STOP = "/ca/ca.crt", "/work/stop"

def out(line):
    print(line, flush=True)

def pool(endpoint, token, timeout):
    return VelocityPool(node=endpoint, auth=token, ca=CA, pool_size=1, timeout=timeout)

async def writer(wid, endpoint, token, acked, stop):
    seq = 0
    while not stop.is_set():
        try:
            async with pool(endpoint, token, 2.0) as vdb:
                while not stop.is_set():
                    seq += 1
                    key = f"w{wid}:{seq}"
                    try:
                        await asyncio.wait_for(vdb.set(key, seq), 4)
                    except Exception as exc:
                        out(f"E {time.time():.3f} {wid} {type(exc).__name__}")
                        await asyncio.sleep(0.05)
                        continue
                    acked.append((key, seq))
                    out(f"A {time.time():.3f} {key}")
        except Exception as exc:  # could not connect: the Service has no primary yet
            out(f"E {time.time():.3f} {wid} connect-{type(exc).__name__}")
            await asyncio.sleep(0.2)

async def replication(endpoint, token):
    async with pool(endpoint, token, 3.0) as vdb:
        info = await asyncio.wait_for(vdb.info("replication"), 4)
    return info.get("replication", info)

async def probe(endpoint, token, stop):
    while not stop.is_set():
        t = time.time()
        try:
            r = await replication(endpoint, token)
            node = (r.get("endpoint") or "?").removeprefix("vdb://").split(".")[0]
            out(f"P {t:.3f} {r.get('role')} {node}")
        except Exception as exc:
            out(f"P {t:.3f} error {type(exc).__name__}")
        await asyncio.sleep(0.25)

async def missing(endpoint, token, acked, stale):
    bad = []
    async with pool(endpoint, token, 5.0) as vdb:
        for i in range(0, len(acked), 500):
            chunk = acked[i:i + 500]
            values = await vdb.mget([k for k, _ in chunk], stale_ok=stale)
            bad += [k for (k, v), got in zip(chunk, values) if got != v]
    return bad

async def until(check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except Exception as exc:
            result = f"error {type(exc).__name__}: {exc}"
        if result is True or time.monotonic() > deadline:
            return result
        await asyncio.sleep(1)

async def main(service, writers, *pods):
    token = open("/auth/token").read().strip()
    stop, acked = asyncio.Event(), []
    async def watch():
        while not os.path.exists(STOP):
            await asyncio.sleep(0.1)
        stop.set()
    out("READY")
    await asyncio.gather(watch(), probe(service, token, stop),
                         *(writer(w, service, token, acked, stop) for w in range(int(writers))))
    lost = await missing(service, token, acked, False)
    replicas = {}
    for ep in pods:  # every pod ends up with every acknowledged write
        async def complete(ep=ep):
            return not await missing(ep, token, acked, True)
        replicas[ep] = await until(complete, 90)
    positions = {}
    async def converged():  # the load has stopped: every pod at the same position
        for ep in pods:
            r = await replication(ep, token)
            positions[ep] = [r.get("role"), r["position"]["epoch"], r["position"]["seq"]]
        return len({tuple(p[1:]) for p in positions.values()}) == 1
    same = await until(converged, 60)
    out("RESULT " + json.dumps({"acked": len(acked), "lost": lost[:20], "lost_count": len(lost),
                                "replicas_complete": replicas, "positions": positions,
                                "converged": same}))

asyncio.run(main(*sys.argv[1:]))
"""


@dataclass
class Switch:
    """When each piece of routing state first named the new primary (seconds after t0)."""

    t0: float
    old: str
    new: str | None = None
    seen: dict[str, float] = field(default_factory=dict)
    old_pod_when_relabelled: str = ""

    def mark(self, what: str) -> None:
        self.seen.setdefault(what, round(time.time() - self.t0, 2))


@dataclass
class LoadReport:
    acks: list[float]
    errors: Counter[str]
    probes: list[tuple[float, str, str]]
    result: dict[str, Any]

    def recovery(self, t0: float) -> tuple[float, float]:
        """(seconds from t0 until the write that ended the longest pause since t0, that pause)."""
        times = sorted(self.acks)
        before = [t for t in times if t < t0]
        after = [t for t in times if t >= t0]
        assert after, "no write was acknowledged after the failure"
        start = before[-1] if before else t0
        longest, resumed = after[0] - start, after[0]
        for a, b in itertools.pairwise(after):
            if b - a > longest:
                longest, resumed = b - a, b
        return round(resumed - t0, 2), round(longest, 2)

    def service_switch(self, t0: float, new: str) -> float | None:
        """Seconds from t0 until a fresh connection through the Service reached `new` as
        primary (and every later probe did too)."""
        first = None
        for t, role, node in self.probes:
            if t < t0:
                continue
            reached = role == "primary" and node == new
            first = (first or t) if reached else None
        return None if first is None else round(first - t0, 2)


def _cluster_spec(**replication: Any) -> dict[str, Any]:
    """The `fo` cluster; `replication` adds spec.replication fields (e.g. the Lease timing)."""
    return {
        "apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": CLUSTER},
        "spec": {
            "replicas": 2, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
            "podAntiAffinity": "Preferred",
            "replication": {"mode": "sync", "syncReplicas": 1, **replication},
            "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}},
        },
    }


def _pod_endpoint(ns: Kubectl, pod: str) -> str:
    return f"vdb://{pod}.{CLUSTER}-headless.{ns.namespace}.svc:2005"


def _client_pod(ns: Kubectl, name: str, node: str | None) -> dict[str, Any]:
    args = [f"vdb://{CLUSTER}.{ns.namespace}.svc:2005", str(WRITERS),
            *(_pod_endpoint(ns, f"{CLUSTER}-{i}") for i in range(3))]
    spec: dict[str, Any] = {
        "restartPolicy": "Never", "enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "client", "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
            "command": ["python3", "-c", CLIENT, *args],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumeMounts": [{"name": "ca", "mountPath": "/ca"}, {"name": "auth", "mountPath": "/auth"},
                             {"name": "work", "mountPath": "/work"}],
        }],
        "volumes": [{"name": "ca", "secret": {"secretName": f"{CLUSTER}-ca"}},
                    {"name": "auth", "secret": {"secretName": f"{CLUSTER}-auth"}},
                    {"name": "work", "emptyDir": {"sizeLimit": "16Mi"}}],
    }
    if node is not None:  # node loss: the client must not be on the node that is lost
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


class Load:
    """The CLIENT pod: started, waited for, stopped, its log parsed."""

    def __init__(self, ns: Kubectl, name: str, node: str | None = None) -> None:
        self.ns, self.name = ns, name
        ns.apply(_client_pod(ns, name, node))
        wait_for(lambda: "READY" in ns.run("logs", name), timeout=120, what=f"load client {name} started")

    def _acks(self) -> list[float]:
        return [float(ln.split()[1]) for ln in self.ns.run("logs", self.name).splitlines() if ln.startswith("A ")]

    def wait_acks(self, *, after: float, count: int, timeout: float = 120) -> None:
        wait_for(lambda: sum(t > after for t in self._acks()) >= count, timeout=timeout,
                 what=f"{count} writes acknowledged by {self.name} after t={after:.1f}", interval=0.5)

    def stop(self) -> LoadReport:
        self.ns.exec(self.name, "python3", "-c", "open('/work/stop', 'w').close()")
        wait_for(lambda: self.ns.json("get", "pod", self.name)["status"].get("phase") in ("Succeeded", "Failed"),
                 timeout=300, what=f"load client {self.name} to verify and exit")
        logs = self.ns.run("logs", self.name)
        phase = self.ns.json("get", "pod", self.name)["status"]["phase"]
        assert phase == "Succeeded", f"load client {self.name} failed:\n{logs[-3000:]}"
        self.ns.run("delete", "pod", self.name, "--wait=false")
        acks: list[float] = []
        probes: list[tuple[float, str, str]] = []
        errors: Counter[str] = Counter()
        result = None
        for line in logs.splitlines():
            parts = line.split()
            if line.startswith("A "):
                acks.append(float(parts[1]))
            elif line.startswith("E ") and len(parts) >= 4:
                errors[parts[3]] += 1
            elif line.startswith("P ") and len(parts) >= 3:
                probes.append((float(parts[1]), parts[2], parts[3] if len(parts) > 3 else ""))
            elif line.startswith("RESULT "):
                result = json.loads(line.removeprefix("RESULT "))
        assert result is not None, f"no RESULT from {self.name}:\n{logs[-3000:]}"
        return LoadReport(acks, errors, probes, result)


def _state(ns: Kubectl) -> dict[str, Any]:
    return state(ns, CLUSTER)


def _follow_switch(ns: Kubectl, t0: float, old: str, timeout: float = 120) -> Switch:
    """Poll until the Lease, the role label, status.currentPrimary and the Service's ready
    endpoints all name one new primary; record when each first did."""
    sw = Switch(t0=t0, old=old)
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            st = _state(ns)
        except KubectlError:
            time.sleep(0.3)
            continue
        holder = st["holder"]
        if holder and holder != old:
            sw.new = holder
            sw.mark("lease")
            pod = st["pods"].get(holder, {})
            labelled = pod.get("role") == "primary" and all(
                p["role"] != "primary" for n, p in st["pods"].items() if n != holder)
            if labelled:
                sw.mark("label")
                if not sw.old_pod_when_relabelled and old in st["pods"]:
                    o = st["pods"][old]
                    sw.old_pod_when_relabelled = (f"{old}: phase {o['phase']}, Ready={o['ready']}, "
                                                  f"role={o['role']}, deleting={o['deleting']}")
            if st["current"] == holder:
                sw.mark("status")
            if pod.get("ip") and st["endpoints"] == {pod["ip"]}:
                sw.mark("service endpoints")
            if len(sw.seen) == 4:
                return sw
        time.sleep(0.3)
    raise AssertionError(f"the primary did not move everywhere within {timeout:.0f}s "
                         f"(seen so far: {sw.seen}, holder {sw.new}, last state: {st})")


def _primary(ns: Kubectl) -> str:
    return primary(ns, CLUSTER)


def _check_load(report: LoadReport, what: str) -> None:
    r = report.result
    assert r["acked"] > 0, f"{what}: nothing was acknowledged"
    assert r["lost_count"] == 0, f"{what}: {r['lost_count']} acknowledged writes lost, e.g. {r['lost']}"
    assert all(v is True for v in r["replicas_complete"].values()), \
        f"{what}: a pod lacks acknowledged writes: {r['replicas_complete']}"
    assert r["converged"] is True, f"{what}: pods did not reach one position: {r['positions']}"
    roles = sorted(p[0] for p in r["positions"].values())
    assert roles == ["primary", "replica", "replica"], f"{what}: roles {r['positions']}"


def _report(what: str, t0: float, report: LoadReport, sw: Switch) -> tuple[float, float]:
    recovery, gap = report.recovery(t0)
    assert sw.new is not None
    service = report.service_switch(t0, sw.new)
    print(f"\n{what}: writes acknowledged again after {recovery:.2f}s (target {TARGET_S:.0f}s; longest pause "
          f"{gap:.2f}s); {report.result['acked']} writes acknowledged, {report.result['lost_count']} lost, "
          f"failed attempts {dict(report.errors)}; {sw.old} -> {sw.new}; seen after t0: {sw.seen}; "
          f"a fresh connection through the Service reached the new primary after {service}s"
          + (f"; when relabelled: {sw.old_pod_when_relabelled}" if sw.old_pod_when_relabelled else ""))
    return recovery, gap


def _node_control(cmd: str, action: str, node: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shlex.split(cmd), action, node], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def operator(namespace: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log: Path = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(namespace, log) as op:
        yield op


def _stoppable(ns: Kubectl, node_control: str | None) -> set[str]:
    """The nodes `node_control` can stop (`CMD status NODE` says running)."""
    if node_control is None:
        return set()
    return {n["metadata"]["name"] for n in ns.json("get", "nodes")["items"]
            if _node_control(node_control, "status", n["metadata"]["name"]).stdout.strip() == "running"}


def _all_ready(ns: Kubectl, count: int) -> bool:
    return all_ready(ns, CLUSTER, count)


@pytest.fixture(scope="module")
def cluster(namespace: Kubectl, operator: OperatorProcess, node_control: str | None) -> str:
    """`fo` Ready with 3 pods: one alone on a node (one node_control can stop, if any), two
    on another. Returns the lone pod's node."""
    return bring_up(namespace, node_control, _cluster_spec())


def bring_up(namespace: Kubectl, node_control: str | None, spec: dict[str, Any]) -> str:
    """The `cluster` fixture's work for the cluster `spec` (named CLUSTER); e2e/test_node_loss_lease.py
    uses it with other Lease timings."""
    nodes = [n for n in namespace.json("get", "nodes")["items"] if not n["spec"].get("unschedulable")]
    if len(nodes) < 2:
        message = "the failover tests need two schedulable nodes"
        if node_control is None:  # e.g. kind's one-node e2e/kind-config.yaml
            pytest.skip(f"{message} (add a worker to the kind cluster)")
        pytest.fail(f"{message} (make e2e adds velocity-node-2 with hack/cluster/add-node.sh)", pytrace=False)
    namespace.apply(spec)
    namespace.run("wait", "--for=condition=Ready", f"vc/{CLUSTER}", "--timeout=300s", timeout=320)
    wait_for(lambda: _all_ready(namespace, 2), timeout=120, what="2 pods Ready")
    placement = {name: pod["node"] for name, pod in _state(namespace)["pods"].items()}
    assert len(set(placement.values())) == 2, f"the scheduler did not spread the pods: {placement}"
    stoppable = _stoppable(namespace, node_control)
    lone = next((node for node in placement.values() if node in stoppable), placement[f"{CLUSTER}-0"])
    # The third pod goes to the other node: keep the lone pod's node cordoned meanwhile.
    namespace.run("cordon", lone)
    try:
        namespace.run("scale", f"vc/{CLUSTER}", "--replicas=3")
        wait_for(lambda: _all_ready(namespace, 3), timeout=240, what="3 pods Ready")
    finally:
        namespace.run("uncordon", lone, check=False)
    namespace.run("wait", "--for=condition=Ready", f"vc/{CLUSTER}", "--timeout=120s", timeout=140)
    _primary(namespace)
    return str(lone)


def test_pods_spread_over_two_nodes(namespace: Kubectl, cluster: str) -> None:
    st = _state(namespace)
    placement = {name: pod["node"] for name, pod in st["pods"].items()}
    on_lone = [name for name, node in placement.items() if node == cluster]
    assert len(placement) == 3 and len(set(placement.values())) == 2 and len(on_lone) == 1, placement
    print(f"\nplacement: {placement}; primary {st['holder']}")


def test_primary_pod_deletion_under_load(namespace: Kubectl, cluster: str) -> None:
    old = _primary(namespace)
    old_uid = _state(namespace)["pods"][old]["uid"]
    load = Load(namespace, "load-delete")
    load.wait_acks(after=0, count=30)
    t0 = time.time()
    namespace.run("delete", "pod", old, "--wait=false")
    sw = _follow_switch(namespace, t0, old)
    load.wait_acks(after=time.time(), count=20)
    # The deleted pod comes back (new uid) as a replica.
    wait_for(lambda: (p := _state(namespace)["pods"].get(old)) and p["uid"] != old_uid and p["ready"]
             and p["role"] == "replica", timeout=180, what=f"{old} back, Ready, labelled replica")
    back = time.time() - t0
    namespace.run("wait", "--for=condition=Ready", f"vc/{CLUSTER}", "--timeout=120s", timeout=140)
    report = load.stop()
    recovery, _ = _report("primary pod deleted", t0, report, sw)
    print(f"{old} back as a Ready replica {back:.1f}s after its deletion")
    _check_load(report, "pod deletion")
    assert recovery <= HARD_LIMIT_S, f"writes were refused for {recovery:.1f}s after the pod deletion"


def test_node_loss_under_load(namespace: Kubectl, cluster: str, node_control: str | None) -> None:
    lose_primary_node(namespace, cluster, node_control, "node loss")


def lose_primary_node(namespace: Kubectl, cluster: str, node_control: str | None, what: str) -> float:
    """Make the pod alone on node `cluster` the primary, stop that node under load, start it
    again; checks the load and returns the seconds until writes were acknowledged again."""
    if node_control is None:
        pytest.skip("node loss needs --node-control CMD (make e2e passes hack/cluster/node.sh)")
    target = cluster
    if target not in _stoppable(namespace, node_control):
        pytest.skip(f"{node_control} cannot stop {target}, the node of the lone pod")
    hostnames = {n["metadata"]["name"]: n["metadata"]["labels"].get("kubernetes.io/hostname", n["metadata"]["name"])
                 for n in namespace.json("get", "nodes")["items"]}

    # The primary must be the lone pod (the other node keeps a replica to acknowledge sync
    # writes): while it is not, delete it; the Lease goes to another pod, the deleted pod
    # comes back as a replica. Each try gives the lone pod about one chance in two.
    for _ in range(8):
        primary = _primary(namespace)
        if _state(namespace)["pods"][primary]["node"] == target:
            break
        t = time.time()
        namespace.run("delete", "pod", primary, "--wait=false")
        _follow_switch(namespace, t, primary)
        wait_for(lambda: _all_ready(namespace, 3), timeout=180, what="3 pods Ready again")
    st = _state(namespace)
    assert st["pods"][primary]["node"] == target, f"could not make the pod on {target} the primary: {st}"
    survivor = next(p["node"] for n, p in st["pods"].items() if n != primary)
    print(f"\nprimary {primary} alone on {target} (to be lost); replicas on {survivor}")

    # Keep other tests' new pods off the node that is about to die (ours are bound already)
    # and give theirs there a minute to finish.
    namespace.run("cordon", target)
    stopped = False
    try:
        def others() -> list[str]:
            return [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                    for p in namespace.json("get", "pods", "--all-namespaces",
                                            "--field-selector", f"spec.nodeName={target}")["items"]
                    if p["metadata"]["namespace"] != namespace.namespace
                    and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        try:
            wait_for(lambda: not others(), timeout=60, what=f"other tests' pods to leave {target}")
        except TimeoutError:
            print(f"warning: pods of other tests on {target} are lost with it: {others()}")
        load = Load(namespace, "load-node", node=hostnames[survivor])
        load.wait_acks(after=0, count=30)
        t0 = time.time()
        done = _node_control(node_control, "stop", target)
        stopped = True
        assert done.returncode == 0, f"{node_control} stop {target}: {done.stderr}"
        sw = _follow_switch(namespace, t0, primary)
        load.wait_acks(after=time.time(), count=20)

        t_start = time.time()
        done = _node_control(node_control, "start", target)
        assert done.returncode == 0, f"{node_control} start {target}: {done.stderr}"
        stopped = False
        # The old primary's pod was never deleted: its kubelet restarts it, and it rejoins
        # as a replica of the new primary (discarding any unacknowledged tail).
        wait_for(lambda: (p := _state(namespace)["pods"].get(primary)) and p["ready"] and p["role"] == "replica"
                 and _state(namespace)["holder"] == sw.new,
                 timeout=240, what=f"{primary} Ready again as a replica")
        rejoined = time.time() - t_start
        namespace.run("wait", "--for=condition=Ready", f"vc/{CLUSTER}", "--timeout=120s", timeout=140)
        report = load.stop()
    finally:
        if stopped:
            _node_control(node_control, "start", target)
        namespace.run("uncordon", target, check=False)
    recovery, _ = _report(f"{what}: node {target} lost", t0, report, sw)
    print(f"{primary} Ready again as a replica {rejoined:.1f}s after {node_control} start")
    _check_load(report, what)
    assert recovery <= HARD_LIMIT_S, f"writes were refused for {recovery:.1f}s after the node loss"
    return recovery
