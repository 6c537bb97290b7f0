"""PROMOTE and REPLICA_OF under Lease election: what they mean (manager.py's docstring).

- PROMOTE on a replica: accepted only once the Lease names this node (a primary
  handed it over); the node renews it and becomes the primary of its epoch;
- REPLICA_OF naming a replica, sent without an epoch to the primary: a planned
  switchover to that replica (switchover.py);
- REPLICA_OF without a primary (a bare fence) is refused: the agent would take
  the role straight back;
- any other REPLICA_OF: follow, as without a Lease.

Both data planes answer these requests with the functions below (the native core
hands them to the shell: native_lease.py); both reply when the work is done.
"""

from __future__ import annotations

from vproto.errors import InvalidArgumentError, StaleEpochError

from velocity_engine.replication.errors import LeaseNotHeld, SwitchoverError
from velocity_engine.replication.lease_host import LeaseHost
from velocity_engine.replication.switchover import switch_over


async def promote_by_lease(host: LeaseHost) -> tuple[int, int]:
    """PROMOTE: take over the Lease a primary handed to this node; (epoch, seq) after."""
    lease = host.lease
    assert lease is not None
    async with lease.lock:
        try:
            await lease.take_over()
        except LeaseNotHeld as exc:
            raise InvalidArgumentError(f"PROMOTE refused: {exc} (run the switchover on the primary)") from exc
    return host.epoch, host.seq


def check_replica_of(host: LeaseHost, primary: str, epoch: int) -> None:
    """The checks REPLICA_OF passes before anything changes (manager.py's order and words)."""
    if epoch and epoch < host.epoch:
        raise StaleEpochError(f"REPLICA_OF from epoch {epoch}, but this node has seen epoch {host.epoch}")
    if not primary:
        # Fenced but still holding the Lease, the agent would take the role straight
        # back; the engine-run switchover is the way under Lease election.
        raise InvalidArgumentError("this cluster elects its primary with a Lease: use switchover "
                                   "(REPLICA_OF naming the target) rather than a bare fence")
    if primary == host.endpoint:
        raise InvalidArgumentError(f"{primary} is this node: use PROMOTE to make it the primary")


def is_switchover(host: LeaseHost, epoch: int) -> bool:
    """Under Lease election "follow X" sent to the primary without an epoch means: hand the role to X."""
    return not epoch and host.is_primary


async def switch_over_to(host: LeaseHost, target: str) -> int:
    """REPLICA_OF(target) on the primary: the switchover; the new epoch."""
    try:
        report = await switch_over(host, target)
    except SwitchoverError as exc:
        raise InvalidArgumentError(f"switchover to {target} failed: {exc}") from exc
    return report.epoch
