"""read_proof.py and the heartbeat echo bookkeeping of feed.py (issue 12)."""

from __future__ import annotations

from typing import Any

from velocity_engine.replication.feed import ReplicaFeed
from velocity_engine.replication.follower import SILENCE_TIMEOUT_S
from velocity_engine.replication.read_proof import (
    MAX_DRIFT,
    READ_LEASE_S,
    REPLICA_PROMISE_S,
    confirmations_needed,
    read_deadline,
)


def test_the_promise_outlasts_the_lease_on_drifting_clocks_and_never_delays_a_crash_failover() -> None:
    assert REPLICA_PROMISE_S * (1 - MAX_DRIFT) > READ_LEASE_S * (1 + MAX_DRIFT)
    assert REPLICA_PROMISE_S < SILENCE_TIMEOUT_S


def test_confirmations_needed() -> None:
    assert confirmations_needed(sync=True, sync_replicas=1, known_replicas=0) == 0  # standalone
    assert confirmations_needed(sync=True, sync_replicas=1, known_replicas=2) == 1
    assert confirmations_needed(sync=True, sync_replicas=2, known_replicas=4) == 2
    assert confirmations_needed(sync=False, sync_replicas=1, known_replicas=2) == 2
    assert confirmations_needed(sync=False, sync_replicas=1, known_replicas=3) == 2


def test_read_deadline_uses_the_need_th_most_recent_contact() -> None:
    assert read_deadline([], 0) == float("inf")
    assert read_deadline([], 1) == 0.0
    assert read_deadline([0.0, 0.0], 1) == 0.0  # never heard from
    assert read_deadline([10.0, 4.0], 1) == 10.0 + READ_LEASE_S
    assert read_deadline([10.0, 4.0], 2) == 4.0 + READ_LEASE_S
    assert read_deadline([10.0], 2) == 0.0


class _Conn:
    transport: Any = None


def _feed() -> ReplicaFeed:
    return ReplicaFeed(_Conn(), None, "n", "vdb://x:1", 1, None, lambda: None)  # type: ignore[arg-type]


def test_an_echo_counts_from_when_its_heartbeat_was_sent() -> None:
    f = _feed()
    f._sent.extend([(100, 1.0), (101, 1.5), (102, 2.0)])
    assert f.echo(101) and f.contact == 1.5
    assert not f.echo(100)  # older than what was already proved (and dropped)
    assert not f.echo(999)  # never sent: proves nothing
    assert f.contact == 1.5


def test_an_old_echo_does_not_move_the_contact_back() -> None:
    f = _feed()
    f._sent.extend([(100, 1.0), (101, 1.5)])
    assert f.echo(101)
    f._sent.append((102, 2.0))
    assert f.echo(102) and f.contact == 2.0
