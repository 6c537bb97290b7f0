"""The Lease agent honours the duration the holder declared (issue 17): while a change of
spec.replication.leaseDurationSeconds rolls through the pods, a replica running a shorter
duration must not take a Lease its holder, on a longer one, still considers its own.
The agent runs one round (`_step`) against a stand-in API, its clock moved by hand."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes_asyncio import client
from velocity_engine.replication.lease import EPOCH, SEQ, LeaseAgent, LeaseConfig

NS, NAME = "prod", "alpha-primary"
ME = "vdb://alpha-1.alpha-headless.prod.svc:2005"
HOLDER = "vdb://alpha-0.alpha-headless.prod.svc:2005"


@dataclass
class _Repl:
    """The LeaseHost calls one round makes (lease_host.py)."""

    endpoint: str = ME
    is_primary: bool = False
    epoch: int = 3
    current_primary: str = HOLDER
    seq: int = 100
    incomplete: bool = False
    node_id: str = "1"
    promoted: list[int] = field(default_factory=list)
    followed: list[str] = field(default_factory=list)
    renewed_until: list[float] = field(default_factory=list)

    def follow_lease_holder(self, holder: str, epoch: int) -> None:
        self.followed.append(holder)

    def promote_for_lease(self, epoch: int) -> None:
        self.promoted.append(epoch)
        self.is_primary = True

    def lease_renewed(self, writes_until: float) -> None:
        self.renewed_until.append(writes_until)


def _lease(holder: str, duration: int) -> client.V1Lease:
    now = dt.datetime.now(dt.UTC)
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=NAME, namespace=NS, resource_version="41", annotations={EPOCH: "3"}),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=duration, renew_time=now,
                                acquire_time=now, lease_transitions=2),
    )


class _Api:
    """Just the calls one round makes; the member list holds this node only (alive)."""

    def __init__(self, lease: client.V1Lease) -> None:
        self.lease = lease
        self.replaced: list[client.V1Lease] = []

    async def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> client.V1Lease:
        assert (name, namespace) == (NAME, NS)
        return copy.deepcopy(self.lease)

    async def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease,
                                       **_: Any) -> client.V1Lease:
        self.replaced.append(body)
        return body

    async def list_namespaced_lease(self, namespace: str, label_selector: str) -> client.V1LeaseList:
        me = client.V1Lease(
            metadata=client.V1ObjectMeta(name=f"{NAME}-member-1", annotations={SEQ: "100"}),
            spec=client.V1LeaseSpec(holder_identity=ME, renew_time=dt.datetime.now(dt.UTC)),
        )
        return client.V1LeaseList(items=[me])


def _agent(lease: client.V1Lease, *, duration_s: float, renew_s: float,
           unchanged_for: float) -> tuple[LeaseAgent, _Repl, _Api]:
    repl = _Repl()
    agent = LeaseAgent(repl, LeaseConfig(NAME, NS, duration_s, renew_s, None))  # type: ignore[arg-type]
    agent.identity = ME
    api = _Api(lease)
    agent._api = api
    # The agent last saw NAME change `unchanged_for` seconds ago.
    agent._seen_version = lease.metadata.resource_version
    agent._seen_at = time.monotonic() - unchanged_for
    return agent, repl, api


@pytest.mark.parametrize("own, declared, unchanged_for, takes_over", [
    (3.0, 10, 5.0, False),   # shorter own duration: waits for the holder's 10 s
    (3.0, 10, 10.5, True),
    (10.0, 3, 5.0, False),   # longer own duration: its own still applies
    (10.0, 3, 10.5, True),
    (5.0, 5, 4.0, False),    # same settings: as before
    (5.0, 5, 5.5, True),
])
def test_replica_waits_for_the_longer_of_both_durations(own: float, declared: int, unchanged_for: float,
                                                        takes_over: bool) -> None:
    agent, repl, api = _agent(_lease(HOLDER, declared), duration_s=own, renew_s=own / 5,
                              unchanged_for=unchanged_for)
    assert agent.expiry_s(api.lease) == max(own, declared)
    asyncio.run(agent._step())
    if takes_over:
        assert repl.promoted == [3] and api.replaced[-1].spec.holder_identity == ME
        assert api.replaced[-1].spec.lease_duration_seconds == int(own)
    else:
        assert repl.promoted == [] and api.replaced == []


def test_holder_writes_its_own_duration_when_it_renews() -> None:
    """A Lease handed over (or left) by a pod with another duration carries the renewing
    holder's own from its first renewal on."""
    agent, repl, api = _agent(_lease(ME, 10), duration_s=3.0, renew_s=0.5, unchanged_for=0.1)
    repl.is_primary = True
    asyncio.run(agent._step())
    assert [b.spec.lease_duration_seconds for b in api.replaced] == [3]


def test_declared_duration_is_whole_seconds_rounded_up() -> None:
    agent, _, _ = _agent(_lease(HOLDER, 5), duration_s=2.5, renew_s=0.5, unchanged_for=0)
    assert agent.declared_duration_s() == 3
    assert agent.expiry_s(client.V1Lease(spec=client.V1LeaseSpec())) == 2.5  # nothing declared
