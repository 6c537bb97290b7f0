"""Leader election (velocity_operator.leader) against an in-memory Lease store that keeps
the API server's optimistic concurrency (resourceVersion, 409 on a stale write).

What a real kube-apiserver does with two real operator processes is in
tests/operator/test_leader_election.py; here the rules, one at a time, on a fake clock.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from velocity_operator import main as operator_main
from velocity_operator.kube import ApiError
from velocity_operator.leader import (
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
    decide,
    format_micro_time,
)

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


class LeaseStore:
    """One namespace's Leases, as the API server would keep them."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.fail: BaseException | None = None  # raised by every call while set
        self.writes = 0

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self._check()
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease else None

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self._check()
        name = obj["metadata"]["name"]
        if name in self.leases:
            return None
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = stored
        self.writes += 1
        return copy.deepcopy(stored)

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._check()
        name = obj["metadata"]["name"]
        current = self.leases[name]
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiError("PUT", f"/leases/{name}", 409, "Conflict", "the object has been modified")
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = stored
        self.writes += 1
        return copy.deepcopy(stored)

    def spec(self, name: str = "velocity-operator") -> dict[str, Any]:
        spec: dict[str, Any] = self.leases[name]["spec"]
        return spec


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _config(identity: str, **timings: float) -> LeaderElectionConfig:
    return LeaderElectionConfig(namespace="velocity-system", identity=identity, **timings)


def _elector(store: LeaseStore, identity: str, clock: Clock, changes: list[bool] | None = None,
             **timings: float) -> LeaderElector:
    return LeaderElector(store, _config(identity, **timings), clock=clock, wall_clock=lambda: NOW,
                         on_change=(changes.append if changes is not None else lambda leading: None))


def test_decide_renews_takes_over_or_keeps_away() -> None:
    fresh = decide(None, identity="a", expired=False, duration_s=15, now=NOW)
    assert fresh == {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2026-01-02T03:04:05.678901Z",
                     "renewTime": "2026-01-02T03:04:05.678901Z", "leaseTransitions": 0}
    held = {"holderIdentity": "a", "acquireTime": "then", "renewTime": "then", "leaseTransitions": 4}
    assert decide(held, identity="b", expired=False, duration_s=15, now=NOW) is None
    renewed = decide(held, identity="a", expired=False, duration_s=15, now=NOW)
    assert renewed is not None and renewed["acquireTime"] == "then" and renewed["leaseTransitions"] == 4
    taken = decide(held, identity="b", expired=True, duration_s=15, now=NOW)
    assert taken is not None and taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 5
    assert taken["acquireTime"] == taken["renewTime"] == format_micro_time(NOW)
    # Released (holder cleared): anyone may take it at once.
    released = {**held, "holderIdentity": None, "leaseDurationSeconds": 1}
    assert decide(released, identity="b", expired=False, duration_s=15, now=NOW) is not None


@pytest.mark.parametrize(("timings", "message"), [
    ({"lease_duration_s": 12, "renew_deadline_s": 10}, "must be greater than the renew deadline plus the retry"),
    ({"renew_deadline_s": 2.4, "retry_period_s": 2}, "1.2 x the retry period"),
])
def test_config_refuses_unsafe_timings(timings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config("a", **timings)


def test_one_leader_then_takeover_after_a_lease_duration_without_change() -> None:
    store, clock = LeaseStore(), Clock()
    a_changes: list[bool] = []
    a, b = _elector(store, "a", clock, a_changes), _elector(store, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert b.holder() == "a"
        # a renews every round: b never sees the record unchanged for 15 s.
        for _ in range(20):
            clock.t += 2
            assert await a.try_acquire_or_renew()
            assert not await b.try_acquire_or_renew()
        assert store.spec()["leaseTransitions"] == 0
        # a stops renewing (killed): b takes over only a full duration after the last change it saw.
        clock.t += 14.9
        assert not await b.try_acquire_or_renew()
        clock.t += 0.1
        assert await b.try_acquire_or_renew()
        assert store.spec()["holderIdentity"] == "b"
        assert store.spec()["leaseTransitions"] == 1
        # a, back, finds the Lease taken (keep() would now raise LeadershipLost).
        assert not await a.try_acquire_or_renew()
        assert a.holder() == "b"

    asyncio.run(scenario())
    assert a_changes == [True]
    assert b.leading


def test_a_stale_write_loses_the_round() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        clock.t += 16  # expired in b's eyes...
        real_get = store.get

        async def get_then_renew(*args: Any) -> dict[str, Any] | None:
            lease = await real_get(*args)
            store.get = real_get  # type: ignore[method-assign]
            await a.try_acquire_or_renew()  # ...but a renews between b's read and b's write
            return lease

        store.get = get_then_renew  # type: ignore[method-assign]
        assert not await b.try_acquire_or_renew()
        assert store.spec()["holderIdentity"] == "a"

    asyncio.run(scenario())


def test_released_lease_is_taken_at_the_next_try() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert await a.release()
        assert store.spec()["holderIdentity"] is None and store.spec()["leaseDurationSeconds"] == 1
        assert not a.leading
        assert await b.try_acquire_or_renew()  # no wait for the old term
        assert not await a.release()  # not the holder: nothing to release

    asyncio.run(scenario())


def test_keep_raises_when_someone_else_holds_the_lease() -> None:
    store = LeaseStore()
    fast = {"lease_duration_s": 0.5, "renew_deadline_s": 0.3, "retry_period_s": 0.02}
    a = LeaderElector(store, _config("a", **fast))

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        store.leases["velocity-operator"]["spec"]["holderIdentity"] = "intruder"
        store.leases["velocity-operator"]["metadata"]["resourceVersion"] = "999"
        with pytest.raises(LeadershipLost, match="held by intruder"):
            await asyncio.wait_for(a.keep(), 2)

    asyncio.run(scenario())
    assert not a.leading


def test_keep_gives_up_after_the_renew_deadline_of_failures() -> None:
    store = LeaseStore()
    fast = {"lease_duration_s": 0.5, "renew_deadline_s": 0.3, "retry_period_s": 0.02}
    a = LeaderElector(store, _config("a", **fast))

    async def scenario() -> float:
        assert await a.try_acquire_or_renew()
        keeping = asyncio.create_task(a.keep())
        await asyncio.sleep(0.1)
        assert not keeping.done() and store.writes > 2  # renewing
        loop = asyncio.get_running_loop()
        store.fail = ConnectionRefusedError("API server unreachable")
        failing_since = loop.time()
        with pytest.raises(LeadershipLost, match=r"not renewed for 0\.3s"):
            await asyncio.wait_for(keeping, 2)
        return loop.time() - failing_since

    gave_up_after = asyncio.run(scenario())
    assert 0.2 <= gave_up_after < 0.5  # by the deadline, before any standby may take over
    assert not a.leading


def test_keep_survives_a_hung_request_shorter_than_the_deadline() -> None:
    store = LeaseStore()
    fast = {"lease_duration_s": 1.0, "renew_deadline_s": 0.6, "retry_period_s": 0.05}
    a = LeaderElector(store, _config("a", **fast))

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        real_get = store.get
        hung = {"left": 1}

        async def slow_get(*args: Any) -> dict[str, Any] | None:
            if hung["left"]:
                hung["left"] -= 1
                await asyncio.sleep(0.3)  # a slow answer, within the deadline
            return await real_get(*args)

        store.get = slow_get  # type: ignore[method-assign]
        keeping = asyncio.create_task(a.keep())
        await asyncio.sleep(0.8)
        assert not keeping.done() and a.leading
        keeping.cancel()

    asyncio.run(scenario())


def test_keep_renews_after_a_stall_longer_than_the_deadline() -> None:
    """A process starved of CPU (the clock jumps past the renew deadline) still tries: the
    Lease is still its own, so it renews and keeps leading."""
    store = LeaseStore()
    jump = {"s": 0.0}
    fast = {"lease_duration_s": 0.5, "renew_deadline_s": 0.3, "retry_period_s": 0.02}
    a = LeaderElector(store, _config("a", **fast), clock=lambda: time.monotonic() + jump["s"])

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        keeping = asyncio.create_task(a.keep())
        await asyncio.sleep(0.05)
        jump["s"] += 5.0  # five seconds not scheduled
        before = store.writes
        await asyncio.sleep(0.2)
        assert not keeping.done() and a.leading and store.writes > before
        keeping.cancel()

    asyncio.run(scenario())


def test_acquire_waits_for_the_holder_to_stop_renewing() -> None:
    store = LeaseStore()
    fast = {"lease_duration_s": 0.3, "renew_deadline_s": 0.2, "retry_period_s": 0.02}
    a, b = LeaderElector(store, _config("a", **fast)), LeaderElector(store, _config("b", **fast))

    async def scenario() -> None:
        assert await a.try_acquire_or_renew()
        keeping = asyncio.create_task(a.keep())
        acquiring = asyncio.create_task(b.acquire())
        await asyncio.sleep(0.6)  # two lease durations: a renews all along
        assert not acquiring.done()
        keeping.cancel()  # a dies without releasing
        await asyncio.wait_for(acquiring, 2)
        assert store.spec()["holderIdentity"] == "b"

    asyncio.run(scenario())


def test_flags_default_like_kube_controller_manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(operator_main, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert operator_main.parse_args([]).leader_election is None
    with pytest.raises(SystemExit):
        operator_main.parse_args(["--leader-elect"])  # no namespace outside a cluster
    monkeypatch.setenv("POD_NAMESPACE", "velocity-system")
    monkeypatch.setenv("POD_NAME", "velocity-operator-7d9f-x2x4q")
    first = operator_main.parse_args(["--leader-elect"]).leader_election
    second = operator_main.parse_args(["--leader-elect"]).leader_election
    assert first is not None and second is not None
    assert (first.namespace, first.name) == ("velocity-system", "velocity-operator")
    assert (first.lease_duration_s, first.renew_deadline_s, first.retry_period_s) == (15, 10, 2)
    assert first.identity.startswith("velocity-operator-7d9f-x2x4q_") and first.identity != second.identity
    (tmp_path / "ns").write_text("ops\n")
    monkeypatch.delenv("POD_NAMESPACE")
    monkeypatch.setattr(operator_main, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "ns")
    in_cluster = operator_main.parse_args(["--leader-elect", "--leader-elect-lease-duration", "6",
                                           "--leader-elect-renew-deadline", "4",
                                           "--leader-elect-retry-period", "1"]).leader_election
    assert in_cluster is not None and in_cluster.namespace == "ops" and in_cluster.lease_duration_s == 6
    with pytest.raises(SystemExit):
        operator_main.parse_args(["--leader-elect", "--leader-elect-renew-deadline", "20"])


def test_health_reports_leadership() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = _elector(store, "a_1", clock), _elector(store, "b_1", clock)

    async def scenario() -> None:
        health = operator_main.Health(leader_election=True)
        assert health.report()[0] == 503  # not connected yet
        health.elector = b
        assert await a.try_acquire_or_renew()
        assert health.report()[0] == 503  # no election round yet: who holds the Lease is not known
        b.rounds += 1  # what acquire() counts
        assert not await b.try_acquire_or_renew()
        status, body = health.report()
        assert status == 200 and body == {"status": "ok", "leaderElection": True, "leader": False,
                                          "identity": "b_1", "holder": "a_1"}
        await a.release()
        assert await b.try_acquire_or_renew()  # just elected, kopf still starting
        assert health.report() == (503, {"status": "starting", "leaderElection": True, "leader": True,
                                         "identity": "b_1", "holder": "b_1"})
        health.ready.set()
        assert health.report()[0] == 200
        alone = operator_main.Health(leader_election=False)
        assert alone.report() == (503, {"status": "starting", "leaderElection": False, "leader": True,
                                        "identity": "", "holder": ""})
        alone.ready.set()
        assert alone.report()[0] == 200

    asyncio.run(scenario())
