"""A primary that comes back after a failover serves no stale read (issue 12, on Kubernetes
with the Lease).

One VelocityCluster `back`: 3 pods in sync mode (syncReplicas 1), Lease-based failover as
the operator sets it up (lease 5 s, renewal 1 s), all on the suite's node. A probe pod
(Python SDK) runs two loops in one process, on one clock:

- a writer through the client Service: MSET {reg: i, log:i: i} for i = 1, 2, ... one
  after the other; after any error it starts over with a new pool (a frozen primary
  keeps its connections open, and a fresh one through the Service reaches whoever the
  Service routes to by then);
- a reader connected to the primary's own pod (pod_endpoint): linearizable GET reg,
  back to back. Before each GET it notes the floor, the last i whose MSET was
  acknowledged; a GET answered by the pod itself must return at least the floor, and any
  other answer (the SDK followed a REDIRECT) too, unless it is the value of a write whose
  outcome was unknown and that really took effect (log:v exists at the end). The pool
  is pointed back at the pod after each redirect.

The fault, from outside the container (--container-signal: `ctr tasks kill` on the local
cluster, hack/cluster/container.sh): the primary's engine gets SIGSTOP; the test waits
until another pod holds the Lease, is labelled primary, is behind the Service and has
acknowledged 20 writes; then

- test_frozen_primary_returns: SIGCONT. The old primary wakes with its old state and
  the reader's requests queued on its socket (sent while it was frozen, after the new
  primary acknowledged writes);
- test_killed_primary_restarts_on_its_data: SIGKILL of the frozen engine; the kubelet
  restarts the container in the same pod, on the same volume, from its state file
  ("primary" of the old epoch).

The old pod must come back Ready as a replica; then the loops stop, every acknowledged
write must read back through the Service and from the old pod (its own copy). Measured
and printed (-s): fault -> Lease moved / writes acknowledged again, the old pod's return,
and what the reads sent to it got in each phase (served by it, redirected, refused).
Run: `make e2e E2E_ARGS="e2e/test_returning_primary.py -s"`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .cluster_state import (
    EngineContainer,
    all_ready,
    create_sync_cluster,
    engine_container,
    follow_switch,
    primary,
    send_signal,
    state,
)
from .kube import Kubectl, wait_for
from .operator_host import OperatorProcess, running_operator
from .placement import pinned_node
from .sdk_pods import client_pod, pod_endpoint, service_endpoint

CLUSTER = "back"
TARGET_S = 10.0  # issue 5's failover target, for the printed figures
HARD_LIMIT_S = 30.0  # writes acknowledged again after the fault (fails the test beyond; loaded machine)

# Args: SERVICE_ENDPOINT TARGET_POD_ENDPOINT. Logs
#   A <time> <i>                                     MSET i acknowledged
#   E <time> <i> <error>                             MSET i failed (outcome unknown or refused)
#   R <call> <done> <outcome> <value> <floor>        a GET sent to the target pod; outcome:
#                                                    served (by the pod), redirected, or the error
# until /work/stop exists, then checks and prints RESULT {json}.
PROBE = r"""
import asyncio, json, os, sys, time
from velocity import VelocityPool

CA, STOP = "/ca/ca.crt", "/work/stop"

def out(line):
    print(line, flush=True)

class St:
    floor = 0
    acked = []
    failed = {}     # i -> error kind, for MSETs that did not return OK
    reads = []      # (call, done, outcome, value, floor)

async def close(vdb):
    try:
        await asyncio.wait_for(vdb.close(), 1)
    except Exception:
        pass

def pool(endpoint, token, timeout):
    return VelocityPool(node=endpoint, auth=token, ca=CA, pool_size=1, timeout=timeout, connect_timeout=2.0)

async def writer(service, token, stop):
    i, vdb = 0, None
    while not stop.is_set():
        vdb = vdb or pool(service, token, 2.0)
        i += 1
        try:
            await vdb.mset({"reg": i, f"log:{i}": i})
        except Exception as exc:
            St.failed[i] = type(exc).__name__
            out(f"E {time.time():.3f} {i} {type(exc).__name__}")
            await close(vdb)
            vdb = None
            await asyncio.sleep(0.05)
            continue
        St.acked.append(i)
        St.floor = i
        out(f"A {time.time():.3f} {i}")
        await asyncio.sleep(0.02)
    if vdb:
        await close(vdb)

async def reader(target, token, stop):
    vdb = None
    while not stop.is_set():
        if vdb is None:
            vdb = pool(target, token, 3.0)
            home = vdb.endpoint
        floor, call = St.floor, time.time()
        try:
            value = await vdb.get("reg")
            outcome = "served" if vdb.endpoint == home else "redirected"
        except Exception as exc:
            value, outcome = None, type(exc).__name__
        St.reads.append((call, time.time(), outcome, value, floor))
        out(f"R {call:.3f} {time.time():.3f} {outcome} {value} {floor}")
        if outcome == "redirected":  # back to the target for the next read
            await close(vdb)
            vdb = None
        await asyncio.sleep(0.05)
    if vdb:
        await close(vdb)

async def values(endpoint, token, keys, stale):
    async with pool(endpoint, token, 10.0) as vdb:
        got = []
        for i in range(0, len(keys), 500):
            got += await vdb.mget(keys[i:i + 500], stale_ok=stale)
        return got

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

async def main(service, target):
    token = open("/auth/token").read().strip()
    stop = asyncio.Event()
    async def watch():
        while not os.path.exists(STOP):
            await asyncio.sleep(0.1)
        stop.set()
    out("READY")
    await asyncio.gather(watch(), writer(service, token, stop), reader(target, token, stop))
    # Which writes took effect: every acknowledged one must; of the others, those whose
    # log:i exists did (outcome unknown at the time).
    keys = St.acked + sorted(St.failed)
    final = {}
    async def read_back():
        final.update(zip(keys, await values(service, token, [f"log:{i}" for i in keys], False)))
        return True
    done = await until(read_back, 60)
    lost = [i for i in St.acked if final.get(i) != i]
    took_effect = {i for i in St.failed if final.get(i) == i}
    acked = set(St.acked)
    served_stale, unexplained = [], []
    for call, end, outcome, value, floor in St.reads:
        if outcome not in ("served", "redirected"):
            continue
        # Answered by the target itself: nothing older than the floor, ever.
        if outcome == "served" and floor and (value is None or value < floor):
            served_stale.append((call, value, floor))
        # Any answer: a value at least the floor that was written, or the value of a write
        # whose outcome was unknown but that took effect (it may count as applied late).
        if value is None:
            ok = floor == 0
        else:
            ok = value in took_effect or (value >= floor and value in acked)
        if not ok:
            unexplained.append((call, outcome, value, floor))
    async def target_complete():  # the target ends up with every acknowledged write (its own copy)
        got = await values(target, token, [f"log:{i}" for i in St.acked], True)
        return all(g == i for g, i in zip(got, St.acked))
    complete = await until(target_complete, 90)
    out("RESULT " + json.dumps({"read_back": done, "acked": len(St.acked), "not_acked": len(St.failed),
                                "not_acked_took_effect": len(took_effect), "lost": lost[:20], "lost_count": len(lost),
                                "served_stale": served_stale[:20], "unexplained": unexplained[:20],
                                "target_complete": complete}))

asyncio.run(main(*sys.argv[1:]))
"""


@dataclass
class Read:
    call: float
    done: float
    outcome: str
    value: int | None
    floor: int


class Probe:
    """The PROBE pod: writer through the Service, reader on the pod `target`."""

    def __init__(self, ns: Kubectl, name: str, target: str) -> None:
        self.ns, self.name = ns, name
        ordinal = int(target.rsplit("-", 1)[1])
        ns.apply(client_pod(name, ["python3", "-c", PROBE, service_endpoint(ns, CLUSTER),
                                   pod_endpoint(ns, CLUSTER, ordinal)],
                            ca_secret=f"{CLUSTER}-ca", auth_secret=f"{CLUSTER}-auth", node=pinned_node(ns)))
        wait_for(lambda: "READY" in ns.run("logs", name), timeout=120, what=f"probe {name} started")

    def acks(self) -> list[tuple[float, int]]:
        return self.acks_from(self.ns.run("logs", self.name))

    def reads(self) -> list[Read]:
        return self.reads_from(self.ns.run("logs", self.name))

    def wait_acks(self, *, after: float, count: int, timeout: float = 120) -> None:
        wait_for(lambda: sum(t > after for t, _ in self.acks()) >= count, timeout=timeout, interval=0.5,
                 what=f"{count} writes acknowledged after t={after:.1f} ({self.name})")

    def wait_reads(self, *, after: float, count: int, outcome: str | None = None, timeout: float = 120) -> None:
        wait_for(lambda: sum(r.call > after and (outcome is None or r.outcome == outcome)
                             for r in self.reads()) >= count,
                 timeout=timeout, interval=0.5,
                 what=f"{count} reads {outcome or ''} sent to the target after t={after:.1f} ({self.name})")

    def stop(self) -> tuple[dict[str, Any], list[tuple[float, int]], list[Read]]:
        self.ns.exec(self.name, "touch", "/work/stop")
        wait_for(lambda: self.ns.json("get", "pod", self.name)["status"].get("phase") in ("Succeeded", "Failed"),
                 timeout=300, what=f"probe {self.name} to verify and exit")
        logs = self.ns.run("logs", self.name)
        phase = self.ns.json("get", "pod", self.name)["status"]["phase"]
        result = next((json.loads(ln.removeprefix("RESULT ")) for ln in logs.splitlines()
                       if ln.startswith("RESULT ")), None)
        assert phase == "Succeeded" and result is not None, f"probe {self.name} ended {phase}:\n{logs[-3000:]}"
        self.ns.run("delete", "pod", self.name, "--wait=false")
        return result, self.acks_from(logs), self.reads_from(logs)

    @staticmethod
    def acks_from(logs: str) -> list[tuple[float, int]]:
        return [(float(p[1]), int(p[2])) for p in (ln.split() for ln in logs.splitlines()) if p and p[0] == "A"]

    @staticmethod
    def reads_from(logs: str) -> list[Read]:
        return [Read(float(p[1]), float(p[2]), p[3], None if p[4] == "None" else int(p[4]), int(p[5]))
                for p in (ln.split() for ln in logs.splitlines()) if p and p[0] == "R"]


def _recovery(acks: list[tuple[float, int]], t0: float) -> tuple[float, float]:
    """(seconds from t0 until the acknowledgement that ended the longest pause since t0,
    that pause)."""
    times = sorted(t for t, _ in acks)
    before = [t for t in times if t < t0]
    after = [t for t in times if t >= t0]
    assert after, "no write was acknowledged after the fault"
    start = before[-1] if before else t0
    longest, resumed = after[0] - start, after[0]
    for a, b in itertools.pairwise(after):
        if b - a > longest:
            longest, resumed = b - a, b
    return round(resumed - t0, 2), round(longest, 2)


def _phases(reads: list[Read], t_fault: float, t_back: float) -> dict[str, Counter[str]]:
    """Outcomes of the reads sent to the target: before `t_fault` (when the signal had
    been delivered), between it and `t_back` (answered at the return or not), after."""
    phases: dict[str, Counter[str]] = {"before the fault": Counter(), "sent while down, answered after": Counter(),
                                       "sent while down, not answered": Counter(), "after the return": Counter()}
    for r in reads:
        if r.call < t_fault:
            phases["before the fault"][r.outcome] += 1
        elif r.call < t_back:
            if r.done >= t_back and r.outcome in ("served", "redirected", "RedirectError"):
                phases["sent while down, answered after"][r.outcome] += 1
            else:
                phases["sent while down, not answered"][r.outcome] += 1
        else:
            phases["after the return"][r.outcome] += 1
    return phases


@pytest.fixture(scope="module")
def operator(namespace: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log: Path = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(namespace, log) as op:
        yield op


@pytest.fixture(scope="module")
def cluster(namespace: Kubectl, operator: OperatorProcess) -> str:
    create_sync_cluster(namespace, CLUSTER)
    return primary(namespace, CLUSTER)


@pytest.fixture
def signaller(container_signal: str | None) -> str:
    if container_signal is None:
        pytest.skip("freezing an engine needs --container-signal CMD (make e2e passes hack/cluster/container.sh)")
    return container_signal


def _started(container: EngineContainer) -> float:
    assert container.started_at is not None
    return datetime.fromisoformat(container.started_at.replace("Z", "+00:00")).timestamp()


def _run(ns: Kubectl, signaller: str, name: str, *, kill: bool) -> None:
    wait_for(lambda: all_ready(ns, CLUSTER, 3), timeout=180, what="3 pods Ready")
    ns.run("wait", "--for=condition=Ready", f"vc/{CLUSTER}", "--timeout=120s", timeout=140)
    old = primary(ns, CLUSTER)
    probe = Probe(ns, name, target=old)
    probe.wait_acks(after=0, count=30)
    probe.wait_reads(after=0, count=10, outcome="served")  # the primary answers the reader itself
    engine = engine_container(ns, old)

    t_fault = time.time()
    send_signal(signaller, engine, "SIGSTOP")
    t_stopped, stopped = time.time(), True
    try:
        sw = follow_switch(ns, CLUSTER, t_fault, old)
        assert sw.new is not None
        probe.wait_acks(after=time.time(), count=20)  # the new primary acknowledges writes
        t_back = time.time()
        send_signal(signaller, engine, "SIGKILL" if kill else "SIGCONT")
        stopped = False
    finally:
        if stopped:
            send_signal(signaller, engine, "SIGCONT")

    def returned() -> bool:
        st = state(ns, CLUSTER)
        pod = st["pods"].get(old, {})
        return bool(pod.get("ready") and pod.get("role") == "replica" and st["holder"] == sw.new)
    wait_for(returned, timeout=240, interval=0.5, what=f"{old} Ready again as a replica of {sw.new}")
    back_s = time.time() - t_back
    after = engine_container(ns, old)
    if kill:
        assert after.restarts == engine.restarts + 1, f"{old}'s engine was not restarted once: {after}"
        t_back = max(t_back, _started(after))  # its new container started (1 s resolution)
    else:
        assert after.restarts == engine.restarts and after.container_id == engine.container_id, \
            f"{old}'s engine was restarted while frozen (liveness probe?): {engine} -> {after}"
    probe.wait_reads(after=time.time(), count=20)
    result, acks, reads = probe.stop()

    recovery, gap = _recovery(acks, t_fault)
    phases = _phases(reads, t_stopped, t_back)
    what = "killed and restarted on its data" if kill else "frozen, then woken"
    print(f"\nold primary {old} {what}: Lease to {sw.new} after {sw.seen['lease']:.2f}s "
          f"(label / status / Service endpoints {sw.seen['label']:.2f} / {sw.seen['status']:.2f} / "
          f"{sw.seen['service endpoints']:.2f}s); writes acknowledged again {recovery:.2f}s after the fault "
          f"(target {TARGET_S:.0f}s; longest pause {gap:.2f}s); {'SIGKILL' if kill else 'SIGCONT'} "
          f"{t_back - t_fault:.1f}s after the fault; {old} Ready as a replica {back_s:.1f}s after that\n"
          f"writes: {result['acked']} acknowledged, {result['lost_count']} lost; {result['not_acked']} not "
          f"acknowledged (of which {result['not_acked_took_effect']} took effect)\n"
          f"reads sent to {old}: " + "; ".join(f"{k}: {dict(v)}" for k, v in phases.items()))
    assert result["read_back"] is True, f"acknowledged writes could not be read back: {result['read_back']}"
    assert result["lost_count"] == 0, f"{result['lost_count']} acknowledged writes lost: {result['lost']}"
    assert not result["served_stale"], f"{old} served stale reads (call time, value, floor): {result['served_stale']}"
    assert not result["unexplained"], f"reads returned values older than acknowledged: {result['unexplained']}"
    assert result["target_complete"] is True, f"{old} lacks acknowledged writes: {result['target_complete']}"
    assert sum(phases["after the return"].values()) >= 20, phases
    # The old pod was reached after its return: it redirected (or refused) the reads.
    assert phases["after the return"]["redirected"] + phases["after the return"]["RedirectError"] > 0, phases
    assert recovery <= HARD_LIMIT_S, f"writes were refused for {recovery:.1f}s after the fault"


def test_frozen_primary_returns(namespace: Kubectl, cluster: str, signaller: str) -> None:
    _run(namespace, signaller, "probe-freeze", kill=False)


def test_killed_primary_restarts_on_its_data(namespace: Kubectl, cluster: str, signaller: str) -> None:
    _run(namespace, signaller, "probe-kill", kill=True)
