"""When a primary may answer a linearizable read: the timing rules, in one place.

Without a Lease, a primary proves it is still the primary with its
replicas (docs/replication.md, "Reads a primary can prove"):

- the primary stamps every REPL_HEARTBEAT with `time_ms`; a replica echoes
  each one straight back (a REPL_HEARTBEAT on the replica's stream). An echo
  proves that the replica followed this primary at some moment after the
  heartbeat was sent, so the primary's *contact* with that replica is the
  monotonic time at which it sent the echoed heartbeat (never when the echo
  arrived: an echo delayed by a freeze or a partition proves nothing new);
- a replica promises not to acknowledge another primary's writes, nor to
  take writes itself after a promotion, until REPLICA_PROMISE_S after the
  last frame it received from the primary it left (its own monotonic clock);
- so the primary may answer a read until READ_LEASE_S after its contact with
  `need` replicas. With sync_replicas = s and at most 2s + 1 nodes, any s
  replicas in contact with the old primary and any new primary with the s
  replicas it needs share a node, whose promise orders the new primary's
  first acknowledged write after the old primary's last read.

The two bounds are measured on two different clocks, so the promise covers
the lease even if one clock runs MAX_DRIFT faster than real time and the
other as much slower: REPLICA_PROMISE_S * (1 - MAX_DRIFT) >=
READ_LEASE_S * (1 + MAX_DRIFT). The promise is shorter than the replica's
silence timeout (follower.SILENCE_TIMEOUT_S), so a failover after a crash,
where the replicas have heard nothing for that long, is not delayed at all.
"""

from __future__ import annotations

from collections.abc import Iterable

READ_LEASE_S = 2.0
MAX_DRIFT = 0.05  # rate error of CLOCK_MONOTONIC; NTP slews by at most 0.05 %
REPLICA_PROMISE_S = 2.5

assert REPLICA_PROMISE_S * (1 - MAX_DRIFT) >= READ_LEASE_S * (1 + MAX_DRIFT)


def confirmations_needed(*, sync: bool, sync_replicas: int, known_replicas: int) -> int:
    """Replicas a primary must be in contact with: to serve reads, and after a restart to serve at all.

    None if no replica ever streamed from this node (in its current epoch):
    no other node holds its data to be promoted with. Otherwise, in sync mode,
    the sync quorum (any new primary's write quorum meets it); in async mode
    (or sync_degrade), a majority of the replicas that streamed from it.
    """
    if not known_replicas:
        return 0
    if sync:
        return sync_replicas
    return known_replicas // 2 + 1


def read_deadline(contacts: Iterable[float], need: int) -> float:
    """Monotonic time until which reads are provable, from each replica's contact time."""
    if need <= 0:
        return float("inf")
    best = sorted(contacts, reverse=True)
    if len(best) < need or best[need - 1] <= 0:
        return 0.0
    return best[need - 1] + READ_LEASE_S
