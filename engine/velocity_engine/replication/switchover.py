"""Planned switchover under Lease election, run by the primary (docs/replication.md).

    fence -> target acknowledged everything -> CAS Lease to target (epoch+1)
          -> PROMOTE target (it confirms and renews the Lease) -> follow it

- fence: the primary keeps its role (its agent keeps renewing the Lease, so a
  slow catch-up cannot make the Lease expire) but its write gate answers
  REDIRECT with a retry hint, which the SDK honours;
- the target must acknowledge (durably, by its own appendfsync policy) the
  primary's last position: every acknowledged write is on it;
- the compare-and-swap on the Lease's resourceVersion is the point of no
  return. Any failure before it unfences: the node stays the primary. After
  it the node never takes writes again as this primary: it stops answering
  writes and reads, tells the target to take over, and follows it. If the
  target does not confirm, the target's own agent takes the role at its
  next round (the Lease names it), or the Lease expires and the usual
  election runs; either way no acknowledged write is lost.

Everything here works on a LeaseHost (lease_host.py), so the same code runs on
the Python data plane (manager.Replication) and on the native one
(native_lease.NativeLeaseHost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vproto import messages as m
from vproto.errors import VelocityError
from vproto.frame import Opcode

from velocity_engine.replication.admin_call import admin_call
from velocity_engine.replication.errors import LeaseOutcomeUnknown, ReplicationError, SwitchoverError
from velocity_engine.replication.lease_host import ReplicaLink

if TYPE_CHECKING:
    from velocity_engine.replication.lease import LeaseAgent
    from velocity_engine.replication.lease_host import LeaseHost

log = logging.getLogger(__name__)

CATCH_UP_S = 1.5  # the target must hold every write this soon after the fence; the SDK retries for 2 s
PREFLIGHT_S = 1.0  # the target must answer a PING this fast before anything changes
# SIGTERM of a Lease primary: the whole hand-over (or release) fits well inside the
# StatefulSet's terminationGracePeriodSeconds (30) with the connection drain after it.
SHUTDOWN_HANDOVER_S = 8.0
REDIRECT_LINGER_S = 1.0


@dataclass
class SwitchoverReport:
    """The last switchover this node ran, for INFO (replication.switchover)."""

    target: str
    state: str  # "running", "done", "failed"
    epoch: int = 0
    seq: int = 0
    pause_ms: float = 0.0  # writes refused: fence to the target's promotion (or to the unfence)
    catch_up_ms: float = 0.0  # fence to the target's acknowledgement of the last write
    lease_ms: float = 0.0  # the Lease compare-and-swap
    promote_ms: float = 0.0  # PROMOTE of the target (it renews the Lease itself)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms_since(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def streaming_feed(repl: LeaseHost, target: str) -> ReplicaLink:
    links = repl.links()
    for link in links:
        if link.endpoint == target and link.streaming:
            return link
    known = ", ".join(sorted(f.endpoint for f in links if f.streaming)) or "none"
    raise SwitchoverError(f"{target} is not a replica streaming from this primary (streaming: {known})")


async def wait_acked(repl: LeaseHost, feeds: list[ReplicaLink], seq: int, timeout: float) -> None:
    """Until every feed acknowledged `seq`; SwitchoverError if one disconnects or time runs out."""
    deadline = time.monotonic() + timeout
    last = {f.key: f for f in feeds}
    while True:
        now = {f.key: f for f in repl.links()}
        # A replica's connection is its key: one that reconnected is another feed.
        for key in last:
            if key in now:
                last[key] = now[key]
        behind = [f for f in last.values() if f.acked_seq < seq]
        if not behind:
            return
        for f in behind:
            if f.key not in now:
                raise SwitchoverError(f"{f.endpoint} disconnected at seq {f.acked_seq} before reaching {seq}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            lag = ", ".join(f"{f.endpoint} at {f.acked_seq}" for f in behind)
            raise SwitchoverError(f"replicas did not acknowledge seq {seq} within {timeout:g}s ({lag})")
        # Woken by an acknowledgement; the cap re-checks that the feeds are still connected.
        await repl.wait_for_ack(min(remaining, 0.1))


async def settle_quorum(repl: LeaseHost, timeout: float) -> None:
    """Until no sync-mode write waits for its acknowledgements, at most `timeout` (best effort)."""
    deadline = time.monotonic() + timeout
    while repl.sync_pending() and time.monotonic() < deadline:
        await repl.wait_for_ack(min(deadline - time.monotonic(), 0.1))


def _token(repl: LeaseHost) -> str | None:
    return repl.admin_token()


async def switch_over(repl: LeaseHost, target: str, catch_up_s: float = CATCH_UP_S) -> SwitchoverReport:
    """Hand the primary role and the Lease to replica `target`; raises SwitchoverError if it did not happen."""
    lease = repl.lease
    if lease is None:
        raise SwitchoverError("this node does not elect its primary with a Lease")
    running = repl.last_switchover
    if repl.handover or (running is not None and running.state == "running"):
        who = repl.handover or (running.target if running is not None else "?")
        raise SwitchoverError(f"a switchover to {who} is already running")
    report = SwitchoverReport(target, "running")
    repl.last_switchover = report
    t0 = 0.0  # when writes were fenced; 0 until then
    handed = False
    try:
        if not lease.holds():
            raise SwitchoverError(f"this node does not hold the Lease (holder: {lease.holder or 'unknown'})")
        if target == repl.endpoint:
            raise SwitchoverError(f"{target} is this node, already the primary")
        feed = streaming_feed(repl, target)
        # Before the fence, so it costs no write pause: a target that is alive on the network
        # but not running (frozen, overloaded) would otherwise be handed the Lease and never
        # confirm.
        try:
            await asyncio.wait_for(admin_call(target, Opcode.PING, m.PingRequest(b"").encode(),
                                              token=_token(repl), ssl_context=repl.client_ssl()), PREFLIGHT_S)
        except (OSError, TimeoutError, VelocityError, ValueError) as exc:
            raise SwitchoverError(f"{target} did not answer PING within {PREFLIGHT_S:g}s: {exc!r}") from exc
        t0 = time.monotonic()
        repl.handover = target  # the write gate refuses writes from here on
        final = repl.seq
        await wait_acked(repl, [feed], final, catch_up_s)
        # Sync mode with several required replicas: writes the target has but another
        # replica has not acknowledged yet would fail (unknown outcome) when this node steps
        # down. Give them the rest of the catch-up time; they are on the target either way.
        await settle_quorum(repl, catch_up_s - (time.monotonic() - t0))
        report.catch_up_ms = _ms_since(t0)
        async with lease.lock:
            if not lease.holds():
                raise SwitchoverError("this node lost the Lease while the target caught up")
            epoch = repl.epoch + 1
            try:
                await lease.hand_to(target, epoch)
            except LeaseOutcomeUnknown:
                # The request may have been applied: only a fresh read tells. If even
                # that fails, stop being a primary; the agent's next round sorts it out
                # (takes the role back if NAME is still ours, follows the holder otherwise).
                try:
                    holder = await lease.current_holder()
                except Exception as exc:
                    repl.fence_for_lease(f"switchover to {target}: the Lease's state is unknown ({exc!r})")
                    raise SwitchoverError(f"the Lease's state is unknown after a failed write: {exc!r}") from exc
                if holder != target:
                    raise
            handed = True
            report.lease_ms = round(_ms_since(t0) - report.catch_up_ms, 1)
            # Point of no return: NAME is the target's. No more reads or writes here.
            repl.fence_for_lease(f"handed the Lease to {target} (switchover, epoch {epoch})", keep_feeds=True)
            try:
                body = await admin_call(target, Opcode.PROMOTE, m.PromoteRequest(epoch - 1).encode(),
                                        token=_token(repl), ssl_context=repl.client_ssl())
                resp = m.PromoteResponse.decode(body)
            except (OSError, TimeoutError, VelocityError, ValueError) as exc:
                repl.follow(target, epoch, reason=f"handed the Lease to {target}, which did not confirm")
                raise SwitchoverError(
                    f"handed the Lease to {target} (epoch {epoch}) but it did not confirm ({exc}); it takes the "
                    "role at its next lease round, or the Lease expires and the most up-to-date node is elected"
                ) from exc
            report.promote_ms = round(_ms_since(t0) - report.catch_up_ms - report.lease_ms, 1)
            # The other replicas learn of the new primary now rather than at their next
            # lease round: in sync mode the new primary needs them to acknowledge writes.
            await redirect_replicas(repl, target, resp.epoch)
            repl.follow(target, resp.epoch, reason=f"planned switchover to {target}")
        report.epoch, report.seq = resp.epoch, resp.seq
        report.pause_ms = round((time.monotonic() - t0) * 1000, 1)
        report.state = "done"
        log.warning("switchover: %s is the primary of epoch %d at seq %d; writes paused %.1f ms "
                    "(catch-up %.1f, Lease CAS %.1f, promote %.1f)", target, resp.epoch, resp.seq,
                    report.pause_ms, report.catch_up_ms, report.lease_ms, report.promote_ms)
        return report
    except BaseException as exc:
        report.state = "failed"
        report.error = str(exc) or repr(exc)
        report.pause_ms = _ms_since(t0) if t0 else 0.0
        if not handed:
            log.error("switchover to %s failed before the Lease changed: %s; still the primary", target, exc)
        raise
    finally:
        repl.handover = ""  # unfence (a node that handed over is no longer primary: writes redirect)


async def redirect_replicas(repl: LeaseHost, target: str, epoch: int) -> None:
    """REPLICA_OF(target, epoch) to every other replica streaming from this node (best effort:
    one that misses it follows the Lease holder at its next round)."""
    others = {f.endpoint for f in repl.links() if f.endpoint != target and f.streaming}
    body = m.ReplicaOfRequest(target, epoch).encode()
    results = await asyncio.gather(
        *(admin_call(e, Opcode.REPLICA_OF, body, token=_token(repl), ssl_context=repl.client_ssl())
          for e in others),
        return_exceptions=True,
    )
    for endpoint, result in zip(others, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("switchover: telling %s to follow %s failed: %s", endpoint, target, result)


async def release_on_shutdown(repl: LeaseHost, catch_up_s: float = CATCH_UP_S) -> None:
    """No successor could take over: stop writes, let the replicas take what there is, empty the
    Lease's holder. The most up-to-date live node is elected at the others' next round."""
    lease = repl.lease
    assert lease is not None
    repl.handover = "(shutting down)"
    try:
        feeds = [f for f in repl.links() if f.streaming]
        try:
            await wait_acked(repl, feeds, repl.seq, catch_up_s)
        except SwitchoverError as exc:
            log.warning("shutting down: %s; releasing the Lease anyway", exc)
        async with lease.lock:
            lease.retired = True
            await lease.release()
        log.warning("shutting down: released Lease %s; another node takes it at its next round", lease.cfg.name)
    finally:
        # Released or not, a node that is going away takes no more writes. Its streams are
        # cut rather than flushed: a replica that could not keep up (or is frozen) would
        # hold the shutdown's connection drain for its whole grace period, and it resumes
        # from its own position with whoever is elected next.
        repl.cut_replica_streams()
        repl.fence_for_lease("shutting down")
        repl.handover = ""


async def hand_over_for_shutdown(repl: LeaseHost) -> None:
    """SIGTERM of the Lease holder: switch over to the most up-to-date streaming replica
    (no acknowledged write lost, async mode included), else release the Lease so that
    the others need not wait for it to expire. Bounded by SHUTDOWN_HANDOVER_S."""
    lease = repl.lease
    if lease is None:
        return
    try:
        await asyncio.wait_for(_hand_over_or_release(repl, lease), SHUTDOWN_HANDOVER_S)
    except (TimeoutError, ReplicationError, VelocityError, OSError) as exc:
        log.error("shutting down: no clean hand-over (%s); the Lease expires on its own", exc)
        repl.fence_for_lease("shutting down")
    except Exception:
        log.exception("shutting down: hand-over failed; the Lease expires on its own")
        repl.fence_for_lease("shutting down")
    lease.retired = True
    try:
        await asyncio.wait_for(_withdraw(lease), 3.0)  # the lock too: a round may hang on the API
    except Exception as exc:  # best effort: the member Lease ages out after one lease duration
        log.warning("shutting down: could not withdraw this node's member Lease: %s", exc)


async def _withdraw(lease: LeaseAgent) -> None:
    async with lease.lock:
        await lease.withdraw()


async def _hand_over_or_release(repl: LeaseHost, lease: LeaseAgent) -> None:
    if not (repl.is_primary and lease.holds()):
        return
    best = sorted((f for f in repl.links() if f.streaming), key=lambda f: -f.acked_seq)
    for feed in best[:2]:  # the most up-to-date first; a second chance if it cannot take over
        try:
            await switch_over(repl, feed.endpoint)
            await _linger_for_redirects(repl)
            return
        except SwitchoverError as exc:
            log.error("shutting down: switchover to %s failed: %s", feed.endpoint, exc)
            if not repl.is_primary:
                return  # the Lease was handed over; the target takes it at its next round
    await release_on_shutdown(repl)


async def _linger_for_redirects(repl: LeaseHost) -> None:
    """After a hand-over, keep the client connections open until clients stop sending
    requests here: each gets REDIRECT naming the new primary (the SDK follows it)
    instead of a closed connection. Ends once no REDIRECT went out for 100 ms, or after
    REDIRECT_LINGER_S (a client that never follows redirects must not hold us up)."""
    deadline = time.monotonic() + REDIRECT_LINGER_S
    seen = -1
    while time.monotonic() < deadline:
        now = repl.redirects_sent()
        if now == seen:
            return
        seen = now
        await asyncio.sleep(0.1)  # the window in which a following client would have asked again
