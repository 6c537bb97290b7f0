"""Replication: the node's role (primary or replica), its epoch, and the opcodes 0x40-0x4F.

One object per server. It owns the ReplicatedStorage the command layer
uses, the feeds of connected replicas (primary), the follower task
(replica), the sync-mode quorum, and the role switches:

- PROMOTE (admin): a replica becomes the primary of a new, higher epoch and
  keeps telling its former primary (REPLICA_OF with the new epoch) until
  that node has stepped down: fencing;
- REPLICA_OF (admin, or from a newer primary): follow a primary. A primary
  that receives it with a newer epoch stops taking writes at once (pending
  sync-mode replies fail, never acknowledged) and rejoins as a replica; if
  its log diverged (writes nobody acknowledged), the position check makes
  it take a full copy, which discards them;
- REPL_SYNC from a replica that has seen a newer epoch fences this primary
  the same way.

Under Lease election (lease.py) the Lease decides who is primary, so two
requests change meaning (switchover.py does the work; both reply when it
is done, so a client must not pipeline other requests on that connection):

- REPLICA_OF naming a replica, sent without an epoch to the primary: a
  planned switchover to that replica (fence, catch-up, Lease CAS, promote);
- PROMOTE on a replica: accepted only once the Lease names this node (the
  primary handed it over); the node renews it and becomes the primary.

A primary stopped gracefully (SIGTERM) hands over the same way to its most
up-to-date replica, or releases the Lease if none can take over.

On a replica, writes and linearizable reads get REDIRECT naming the
primary; STALE_OK reads are served locally.

A primary answers a linearizable read only while it can prove it is still
the primary (read_proof.py): under a Lease, while the Lease is surely its
own; in sync mode, while it has heard the echo of a recent heartbeat from
the sync quorum. A node that restarts as the primary from its state file
serves nothing (REDIRECT, retry) until enough of its replicas are back or
an operator PROMOTEs it; a deposed one is fenced by its successor meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from vproto import messages as m
from vproto.errors import (
    ErrorCode,
    InvalidArgumentError,
    NotEnoughReplicasError,
    RedirectError,
    StaleEpochError,
    UnsupportedVersionError,
    VelocityError,
)
from vproto.frame import RESPONSE_BIT, Consistency, Opcode, encode_frame

from velocity_engine.auth import Role
from velocity_engine.replication.admin_call import admin_call
from velocity_engine.replication.feed import ReplicaFeed
from velocity_engine.replication.follower import Follower, FollowerConfig
from velocity_engine.replication.lease import LeaseAgent, LeaseConfig
from velocity_engine.replication.lease_admin import promote_by_lease, switch_over_to
from velocity_engine.replication.lease_host import ReplicaLink
from velocity_engine.replication.lease_metrics import lease_metric_families
from velocity_engine.replication.position import EpochHistory, Position
from velocity_engine.replication.read_proof import REPLICA_PROMISE_S, confirmations_needed, read_deadline
from velocity_engine.replication.replicated_storage import ReplicatedStorage, wall_ms
from velocity_engine.replication.state_file import NodeState, load_state, save_state
from velocity_engine.replication.switchover import SwitchoverReport, hand_over_for_shutdown
from velocity_engine.replication.wire_checks import MAX_EPOCH, check_epoch, check_seq
from velocity_engine.storage.base import Mutation, Storage
from velocity_engine.tls import client_context

if TYPE_CHECKING:
    from velocity_engine.dispatch import Dispatcher, Session
    from velocity_engine.server import Server

log = logging.getLogger(__name__)

WRITE_OPS = frozenset({Opcode.SET, Opcode.DEL, Opcode.INCR, Opcode.EXPIRE, Opcode.PERSIST, Opcode.CAS, Opcode.MSET})
READ_OPS = frozenset({Opcode.GET, Opcode.EXISTS, Opcode.TTL, Opcode.MGET, Opcode.SCAN})
HOUSEKEEPING_S = 0.05
FENCE_RETRY_S = 0.5
PROMOTION_GRACE_S = 1.0  # sync mode: a new primary answers "retry" while its replicas connect
STREAM_VERSION = 1  # docs/formats/replication.md; the native data plane speaks 2


class Replication:
    def __init__(self, server: Server, inner: Storage) -> None:
        s = server.settings
        self.server = server
        self.settings = s
        self.storage = ReplicatedStorage(inner, s.replication_backlog_bytes)
        state = load_state(s.data_dir)
        fresh = state is None
        if state is None:
            state = NodeState()
        # The epoch never goes below what the data itself was written in.
        state.epoch = max(state.epoch, self.storage.position.epoch)
        if s.replica_of:
            state.role, state.primary = "replica", s.replica_of
        self.state = state
        self.history = EpochHistory(list(state.history))
        self.storage.epoch = state.epoch
        self.mode = s.replication_mode
        self.quorum_required = s.sync_replicas
        self.feeds: dict[int, ReplicaFeed] = {}  # id(connection) -> feed
        self.follower: Follower | None = None
        self.endpoint = s.advertise or ""
        self.promotions = 0
        self.fenced_by = ""
        self.handover = ""  # the switchover target while writes are fenced for it
        self.promoted_at = -1e9  # time.monotonic() of the last promotion
        self.last_switchover: SwitchoverReport | None = None
        self.acked = asyncio.Event()  # set by every REPL_ACK: a switchover waits on it
        self._dispatcher: Dispatcher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follower_task: asyncio.Task[None] | None = None
        self._fencer_task: asyncio.Task[None] | None = None
        from velocity_engine.replication.quorum import SyncQuorum

        self.quorum = SyncQuorum(s.sync_replicas, s.sync_timeout_s) if self.mode == "sync" else None
        self.lease: LeaseAgent | None = None
        if s.lease_name:
            self.lease = LeaseAgent(self, LeaseConfig(
                s.lease_name, s.lease_namespace, s.lease_duration_s, s.lease_renew_s, s.lease_kubeconfig,
            ))
            if state.role == "primary":
                # Only the lease makes a primary: wait to hold it before taking writes.
                state.role, state.primary = "replica", ""
        # Reads a primary can prove (read_proof.py): by the Lease, or by contact with the sync quorum.
        self.read_proof = self.lease is None and self.mode == "sync" and not s.sync_degrade
        self.primary_contact = 0.0  # monotonic: the last frame from the primary this node followed
        self.writes_not_before = 0.0  # monotonic: a new primary keeps its predecessor's readers safe
        # A primary back from its state file has not re-established its role yet.
        self.confirmed = not (state.role == "primary" and not fresh and self.lease is None and self._need() > 0)
        if self.quorum is not None:
            self.quorum.position = self.storage.seq
            self.storage.replication_waiter = self._waiter
        if self.quorum is not None or self.lease is not None or not self.confirmed:
            self.storage.gate = self._gate
        self.storage.on_apply = self._wake_feeds
        self._dirty_state = fresh or bool(s.replica_of)

    # -- wiring ---------------------------------------------------------------------

    def install(self, dispatcher: Dispatcher) -> None:
        """Register the replication opcodes and the role check with the dispatcher."""
        self._dispatcher = dispatcher
        dispatcher.table[Opcode.REPL_SYNC] = self.op_repl_sync
        dispatcher.table[Opcode.REPL_ACK] = self.op_repl_ack
        dispatcher.table[Opcode.REPL_HEARTBEAT] = self.op_repl_heartbeat
        dispatcher.table[Opcode.PROMOTE] = self.op_promote
        dispatcher.table[Opcode.REPLICA_OF] = self.op_replica_of
        self._apply_role()

    def start(self, port: int) -> None:
        if not self.endpoint:
            host = self.settings.host if self.settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            self.endpoint = f"vdb://{host}:{port}"
        if self._dirty_state:
            self._save()
        self._spawn(self._housekeeping())
        if self.lease is not None:
            self._spawn(self.lease.run())
        if self.state.role == "replica" and self.state.primary:
            self._start_follower(self.state.primary)
        log.info(
            "replication: %s, epoch %d, at seq %d, mode %s%s",
            self.state.role, self.state.epoch, self.storage.seq, self.mode,
            f", following {self.state.primary}" if self.state.role == "replica" else "",
        )
        if not self.confirmed:
            log.warning("restarted as the primary of epoch %d: serving nothing until %d of its replicas "
                        "reconnect, or PROMOTE", self.state.epoch, self._need())

    async def hand_over_for_shutdown(self) -> None:
        """SIGTERM of the Lease holder: hand over or release (switchover.py, shared with
        the native data plane)."""
        await hand_over_for_shutdown(self)

    async def stop(self) -> None:
        if self.lease is not None:
            self.lease.retired = True
        for feed in list(self.feeds.values()):
            feed.close()
        self.feeds.clear()
        if self.quorum is not None:
            self.quorum.fail_all("shutting down")
        pending = {t for t in (*self._tasks, self._follower_task, self._fencer_task) if t is not None}
        while pending:
            # Python 3.11's wait_for can swallow a cancellation that arrives as its inner
            # future completes (a busy follower hits that), so cancel until they are done.
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        if self.lease is not None:
            await self.lease.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _save(self) -> None:
        self.state.history = list(self.history.entries)
        save_state(self.settings.data_dir, self.state)
        self._dirty_state = False

    @property
    def is_primary(self) -> bool:
        return self.state.role == "primary"

    def _apply_role(self) -> None:
        d = self._dispatcher
        primary = self.is_primary
        self.storage.writable = primary
        if d is not None:
            # While role_check is set the connection also skips the hot-path
            # handlers, which bypass every generic check.
            if not primary:
                d.role_check = self._check
            elif self.lease is not None or self.read_proof or not self.confirmed:
                d.role_check = self._check_primary
            else:
                d.role_check = None

    def client_ssl(self) -> Any:
        """The TLS context for connections to other nodes (None with --insecure)."""
        return self._ssl()

    def _ssl(self) -> Any:
        s = self.settings
        if s.insecure:
            return None
        ca = s.replica_ca
        if ca is None and self.server.tls is not None:
            ca = self.server.tls.ca
        return client_context(ca)

    # -- role check (replica) ---------------------------------------------------------

    def _check(self, opcode: int, flags: int) -> None:
        if opcode in READ_OPS:
            if flags & 0x03 == Consistency.STALE_OK and not self.storage.incomplete:
                return
        elif opcode not in WRITE_OPS:
            return
        p = self.state.primary
        where = f"the primary is {p}" if p else "no primary is known (this node was deposed)"
        raise RedirectError(f"this node is a replica; {where}", primary=p, retry_after_ms=0 if p else 50)

    # -- reads a primary can prove (read_proof.py) ----------------------------------------

    def _need(self) -> int:
        sync = self.mode == "sync" and not self.settings.sync_degrade
        return confirmations_needed(sync=sync, sync_replicas=self.quorum_required,
                                    known_replicas=len(self.state.replicas))

    def read_valid_until(self) -> float:
        """Monotonic time until which this primary may answer linearizable reads (0: not now)."""
        if not self.is_primary or not self.confirmed:
            return 0.0
        if self.lease is not None:
            return float("inf") if self.lease.writes_allowed() else 0.0
        if not self.read_proof:
            return float("inf")
        return read_deadline((f.contact for f in self.feeds.values()), self._need())

    def _check_primary(self, opcode: int, flags: int) -> None:
        """The role check of a primary that must prove its reads (or has not confirmed its role)."""
        if opcode in READ_OPS:
            if flags & 0x03 == Consistency.STALE_OK:
                return
        elif opcode not in WRITE_OPS:
            return
        if not self.confirmed:
            raise RedirectError(
                f"this node restarted as the primary of epoch {self.state.epoch} and has not re-established "
                f"its role: waiting for {self._need()} of its replicas to reconnect (or PROMOTE)",
                retry_after_ms=100,
            )
        if opcode in READ_OPS and time.monotonic() >= self.read_valid_until():
            why = ("its Lease is not surely its own" if self.lease is not None else
                   f"it has not heard from {self._need()} replica(s) in time")
            raise RedirectError(f"this primary cannot prove it is still the primary ({why}): "
                                "retry, or read with STALE_OK", retry_after_ms=50)

    def op_repl_heartbeat(self, session: Session, body: bytes) -> bytes | None:
        """A replica's echo of our heartbeat (feed.py): contact, and maybe confirmation."""
        hb = m.ReplHeartbeat.decode(body)
        feed = self.feeds.get(id(session.conn))
        if (feed is not None and feed.echo(hb.time_ms) and not self.confirmed and self.is_primary
                and sum(1 for f in self.feeds.values() if f.contact > 0) >= self._need()):
            self.confirmed = True
            self._apply_role()
            log.warning("primary of epoch %d again: %d replica(s) reconnected", self.state.epoch, self._need())
        return None

    def _remember_replica(self, endpoint: str) -> None:
        if endpoint and endpoint not in self.state.replicas and endpoint != self.endpoint:
            self.state.replicas.append(endpoint)
            self._save()

    # -- sync mode --------------------------------------------------------------------

    def _live(self) -> int:
        return sum(1 for f in self.feeds.values() if f.streaming)

    def _gate(self, mutations: Sequence[Mutation]) -> None:
        if not self.confirmed and any(rec is not None for _, rec in mutations):
            raise RedirectError("this primary has not re-established its role since it restarted",
                                retry_after_ms=100)
        wait = self.writes_not_before - time.monotonic()
        if wait > 0 and any(rec is not None for _, rec in mutations):
            raise RedirectError(f"new primary: writes start in {wait:.3f}s, when the previous primary's "
                                "read lease has surely run out", retry_after_ms=max(1, int(wait * 1000)))
        if self.handover:
            raise RedirectError(f"this primary is handing over to {self.handover}: retry shortly",
                                retry_after_ms=20)
        if self.lease is not None and not self.lease.writes_allowed():
            raise RedirectError("this primary's lease is not renewed: writes stop before it can expire",
                                retry_after_ms=100)
        if self.quorum is None or self.settings.sync_degrade:
            return
        live = self._live()
        if live < self.quorum_required and any(rec is not None for _, rec in mutations):
            # (From when writes may start: a promotion's read-lease wait comes first.)
            if time.monotonic() - max(self.promoted_at, self.writes_not_before) < PROMOTION_GRACE_S:
                # Just promoted (switchover, election): the replicas are reconnecting to
                # this node right now. Retryable, so that clients wait instead of failing.
                raise RedirectError(f"primary since {time.monotonic() - self.promoted_at:.3f}s: waiting for "
                                    f"{self.quorum_required} replica(s) to connect", retry_after_ms=20)
            raise NotEnoughReplicasError(
                f"sync replication needs {self.quorum_required} replica(s) to acknowledge writes and "
                f"{live} {'is' if live == 1 else 'are'} connected; nothing was written"
            )

    def _waiter(self, seq: int) -> asyncio.Future[None] | None:
        q = self.quorum
        if q is None or not self.is_primary:
            return None
        if self.settings.sync_degrade and self._live() < self.quorum_required:
            return None
        return q.waiter(seq)

    def _on_ack(self) -> None:
        self.acked.set()
        if self.quorum is not None:
            self.quorum.update([f.acked_seq for f in self.feeds.values() if f.streaming])

    def _wake_feeds(self) -> None:
        for f in self.feeds.values():
            f.wake()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            if self.quorum is not None and len(self.quorum):
                n = self.quorum.expire()
                if n:
                    log.warning("%d write(s) not acknowledged by replicas in time; their replies are withheld", n)

    # -- opcodes --------------------------------------------------------------------

    def op_repl_sync(self, session: Session, body: bytes) -> bytes | None:
        req = m.ReplSyncRequest.decode(body)
        check_epoch(req.epoch, "REPL_SYNC epoch")
        check_epoch(req.node_epoch, "REPL_SYNC node_epoch")
        check_seq(req.seq, "REPL_SYNC seq")
        if req.stream_version > STREAM_VERSION:
            # A replica of the native data plane (stream version 2): the two encodings
            # differ (docs/formats/replication.md, "Version negotiation"), refuse clearly.
            raise UnsupportedVersionError(
                f"replica {req.node_id} ({req.endpoint}) speaks replication stream version "
                f"{req.stream_version}; this primary (Python data plane) speaks version {STREAM_VERSION} only"
            )
        conn = session.conn
        if conn is None or conn.transport is None:
            raise InvalidArgumentError("REPL_SYNC needs a connection")
        if not self.is_primary:
            p = self.state.primary
            raise RedirectError(f"not the primary; follow {p or '(unknown)'}", primary=p, retry_after_ms=200)
        if req.node_epoch > self.state.epoch:
            self._fence(req.node_epoch, f"replica {req.node_id} ({req.endpoint}) has seen epoch {req.node_epoch}")
            raise StaleEpochError(
                f"this primary was in epoch {self.state.epoch}, older than {req.node_epoch}: it stopped taking writes"
            )
        st = self.storage
        pos = Position(req.epoch, req.seq)
        partial = not req.full and self.history.holds(pos, st.seq) and st.backlog.covers(req.seq + 1)
        if partial:
            feed = ReplicaFeed(conn, st, req.node_id, req.endpoint, req.seq + 1, None, self._on_ack)
            seq = req.seq
        else:
            feed = ReplicaFeed(conn, st, req.node_id, req.endpoint, st.seq + 1, st.snapshot(), self._on_ack)
            seq = st.seq
        resp = m.ReplSyncResponse(
            full=not partial, epoch=self.state.epoch, seq=seq,
            history=[m.EpochStart(e, s) for e, s in self.history.entries], node_id=self.server.node_id,
        )
        # Straight to the transport: this connection's replies must not wait
        # behind sync-mode acknowledgements, which need this very stream.
        conn.transport.write(encode_frame(Opcode.REPL_SYNC | RESPONSE_BIT, 0, resp.encode()))
        key = id(conn)
        old = self.feeds.pop(key, None)
        if old is not None:
            old.close()
        self.feeds[key] = feed
        self._remember_replica(req.endpoint)
        conn.on_writable = feed.writable
        conn.on_lost = lambda: self._drop(key, feed)
        feed.task = self._spawn(feed.run())
        log.info(
            "replica %s (%s) connected at %s: %s", req.node_id, req.endpoint, pos,
            "resuming from the backlog" if partial else f"full copy at seq {seq}",
        )
        return None

    def _drop(self, key: int, feed: ReplicaFeed) -> None:
        if self.feeds.get(key) is feed:
            del self.feeds[key]
            log.info("replica %s (%s) disconnected at acked seq %d", feed.node_id, feed.endpoint, feed.acked_seq)
        feed.close()

    def op_repl_ack(self, session: Session, body: bytes) -> bytes | None:
        seq = check_seq(m.ReplAck.decode(body).seq, "REPL_ACK seq")
        feed = self.feeds.get(id(session.conn))
        if feed is not None:
            feed.ack(seq)
        return None

    def op_promote(self, session: Session, body: bytes) -> bytes | None:
        min_epoch = m.PromoteRequest.decode(body).min_epoch
        if min_epoch >= MAX_EPOCH:  # the new epoch is min_epoch + 1 at least
            check_epoch(min_epoch + 1, "PROMOTE min_epoch + 1")
        if self.lease is not None:
            # Validated; the Lease's epoch is the one that counts.
            self._reply_later(session, Opcode.PROMOTE, self._promote_by_lease())
            return None
        epoch, seq = self.promote(min_epoch)
        return m.PromoteResponse(epoch, seq).encode()

    async def _promote_by_lease(self) -> bytes:
        """PROMOTE under Lease election: only once a primary handed the Lease to this node."""
        epoch, seq = await promote_by_lease(self)
        return m.PromoteResponse(epoch, seq).encode()

    async def _switch_over(self, target: str) -> bytes:
        return m.ReplicaOfResponse(await switch_over_to(self, target)).encode()

    def _reply_later(self, session: Session, opcode: int, work: Any) -> None:
        """Run `work` (a coroutine returning the reply body) and send its reply, or its error,
        when it finishes. The connection's other replies are not held back, so the client
        must not pipeline requests behind this one (the SDK uses a connection of its own)."""
        conn = session.conn
        if conn is None or conn.transport is None:
            work.close()
            raise InvalidArgumentError(f"opcode 0x{opcode:02x} needs a connection")
        transport = conn.transport

        async def run() -> None:
            from velocity_engine.dispatch import error_frame

            try:
                out = encode_frame(opcode | RESPONSE_BIT, 0, await work)
            except VelocityError as exc:
                out = error_frame(exc)
            except Exception as exc:  # reported to the caller, who would otherwise wait for nothing
                log.exception("opcode 0x%02x failed", opcode)
                out = error_frame(VelocityError(f"internal error: {exc!r}"))
            if not transport.is_closing():
                transport.write(out)

        self._spawn(run())
        return None

    # -- LeaseHost (lease_host.py): what lease.py and switchover.py use ---------------

    @property
    def node_id(self) -> str:
        return self.server.node_id

    @property
    def seq(self) -> int:
        return self.storage.seq

    @property
    def incomplete(self) -> bool:
        return self.storage.incomplete

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def current_primary(self) -> str:
        return self.state.primary

    def links(self) -> list[ReplicaLink]:
        return [ReplicaLink(k, f.endpoint, f.streaming, f.acked_seq) for k, f in self.feeds.items()]

    async def wait_for_ack(self, timeout: float) -> None:
        self.acked.clear()
        with contextlib.suppress(TimeoutError):  # woken by every REPL_ACK
            await asyncio.wait_for(self.acked.wait(), timeout)

    def sync_pending(self) -> bool:
        return self.quorum is not None and len(self.quorum) > 0

    def lease_renewed(self, writes_until: float) -> None:
        """Nothing to do: the write gate and the read check ask the agent (writes_allowed)."""

    def cut_replica_streams(self) -> None:
        for f in list(self.feeds.values()):
            if f.conn.transport is not None:
                f.conn.transport.abort()

    def redirects_sent(self) -> int:
        return int(self.server.stats.errors[ErrorCode.REDIRECT])

    def admin_token(self) -> str | None:
        return self.server.peer_token(Role.ADMIN)

    def promote_for_lease(self, min_epoch: int) -> None:
        self.promote(min_epoch)

    def follow_lease_holder(self, holder: str, epoch: int) -> None:
        self.follow(holder, max(epoch, self.state.epoch), reason=f"the lease is held by {holder}")

    def fence_for_lease(self, reason: str, keep_feeds: bool = False) -> None:
        if self.is_primary:
            self._fence(self.state.epoch, reason, keep_feeds)

    def promote(self, min_epoch: int) -> tuple[int, int]:
        """Become the primary of a new epoch above min_epoch; returns (epoch, seq)."""
        st = self.storage
        if self.is_primary and self.confirmed and min_epoch < self.state.epoch:
            return self.state.epoch, st.seq
        if st.incomplete:
            raise InvalidArgumentError("cannot promote: this replica's first full copy has not finished")
        old_primary = self.state.primary
        self._stop_follower()
        if self.read_proof:
            # Whoever read from the primary we followed may still do so until our promise ends.
            self.writes_not_before = self.primary_contact + REPLICA_PROMISE_S
        epoch = max(self.state.epoch, min_epoch) + 1
        self.history.begin(epoch, st.seq + 1)
        self.state = NodeState(epoch, list(self.history.entries), "primary", "")
        self._save()
        st.epoch = epoch
        if self.quorum is not None:
            self.quorum.reset(st.seq)
        self._apply_role()
        self.promotions += 1
        self.promoted_at = time.monotonic()
        self.fenced_by = ""
        self.confirmed = True
        self._apply_role()
        log.warning("promoted to primary of epoch %d at seq %d", epoch, st.seq)
        if old_primary and self.lease is None:  # with a lease, a deposed primary fences itself
            self._start_fencer(old_primary, epoch)
        return epoch, st.seq

    def op_replica_of(self, session: Session, body: bytes) -> bytes | None:
        req = m.ReplicaOfRequest.decode(body)
        check_epoch(req.epoch, "REPLICA_OF epoch")
        if req.epoch and req.epoch < self.state.epoch:
            raise StaleEpochError(
                f"REPLICA_OF from epoch {req.epoch}, but this node has seen epoch {self.state.epoch}"
            )
        if not req.primary:
            if self.lease is not None:
                # Fenced but still holding the Lease, the agent would take the role straight
                # back; the engine-run switchover is the way under Lease election.
                raise InvalidArgumentError("this cluster elects its primary with a Lease: use switchover "
                                           "(REPLICA_OF naming the target) rather than a bare fence")
            # Planned switchover, step 1: stop taking writes but keep streaming
            # to the replicas, so the chosen one can catch up before PROMOTE.
            if self.is_primary:
                self._fence(self.state.epoch, "fenced for a switchover (REPLICA_OF without a primary)",
                            keep_feeds=True)
            return m.ReplicaOfResponse(self.state.epoch).encode()
        if req.primary == self.endpoint:
            raise InvalidArgumentError(f"{req.primary} is this node: use PROMOTE to make it the primary")
        if self.lease is not None and not req.epoch and self.is_primary:
            # Under Lease election "follow X" sent to the primary means: hand the role to X.
            self._reply_later(session, Opcode.REPLICA_OF, self._switch_over(req.primary))
            return None
        self.follow(req.primary, max(req.epoch, self.state.epoch), reason=f"REPLICA_OF epoch {req.epoch}")
        return m.ReplicaOfResponse(self.state.epoch).encode()

    # -- role changes -----------------------------------------------------------------

    def follow(self, primary: str, epoch: int, reason: str) -> None:
        was_primary = self.is_primary
        self.state = NodeState(epoch, list(self.history.entries), "replica", primary)
        self._save()
        if was_primary:
            self._step_down(reason)
        else:
            self._close_feeds()  # a node fenced for a switchover was still streaming
        self._apply_role()
        if self.follower is None or self.follower.primary != primary or self._follower_task is None:
            self._stop_follower()
            self._start_follower(primary)
        log.warning("now a replica of %s (epoch %d): %s", primary, epoch, reason)

    def _fence(self, epoch: int, reason: str, keep_feeds: bool = False) -> None:
        """Stop taking writes now (a newer epoch exists, or a switchover); wait to be told whom to follow."""
        self.state = NodeState(max(epoch, self.state.epoch), list(self.history.entries), "replica", "")
        self._save()
        self._step_down(reason, keep_feeds)
        self._apply_role()
        self.fenced_by = reason
        log.error("fenced: %s; writes are refused until a primary is set (REPLICA_OF)", reason)

    def _step_down(self, reason: str, keep_feeds: bool = False) -> None:
        if self.quorum is not None:
            self.quorum.fail_all(f"this node stepped down ({reason}); the write's fate is unknown")
        if not keep_feeds:
            self._close_feeds()
        if self._fencer_task is not None:
            self._fencer_task.cancel()
            self._fencer_task = None

    def _close_feeds(self) -> None:
        for feed in list(self.feeds.values()):
            feed.close()
        self.feeds.clear()

    def _start_follower(self, primary: str) -> None:
        s = self.settings
        cfg = FollowerConfig(self.server.node_id, self.endpoint, self.server.peer_token(Role.REPLICATION), self._ssl(),
                             s.max_frame_bytes, legacy_token=self.server.peer_token(Role.CLIENT))
        # A different primary: not before the previous one's readers are safe (read_proof.py).
        not_before = self.primary_contact + REPLICA_PROMISE_S if self.read_proof else 0.0
        self.follower = Follower(primary, self.storage, cfg, lambda: self.state.epoch, self._adopt, self._redirected,
                                 not_before)
        self._follower_task = asyncio.get_running_loop().create_task(self.follower.run())

    def _stop_follower(self) -> None:
        if self.follower is not None:
            self.primary_contact = max(self.primary_contact, self.follower.last_contact_mono)
        if self._follower_task is not None:
            self._follower_task.cancel()
            self._follower_task = None

    def _adopt(self, epoch: int, history: list[tuple[int, int]]) -> None:
        if epoch != self.state.epoch or history != self.history.entries:
            self.history = EpochHistory(list(history))
            self.state.epoch = max(epoch, self.state.epoch)
            self.storage.epoch = self.state.epoch
            self._save()

    def _redirected(self, primary: str) -> None:
        self.state.primary = primary
        self._save()

    def _start_fencer(self, target: str, epoch: int) -> None:
        if self._fencer_task is not None:
            self._fencer_task.cancel()
        self._fencer_task = asyncio.get_running_loop().create_task(self._fence_old(target, epoch))

    async def _fence_old(self, target: str, epoch: int) -> None:
        """Tell the deposed primary about the new epoch until it has stepped down."""
        body = m.ReplicaOfRequest(self.endpoint, epoch).encode()
        while self.is_primary and self.state.epoch == epoch:
            try:
                await admin_call(target, Opcode.REPLICA_OF, body, token=self.server.peer_token(Role.ADMIN),
                                 ssl_context=self._ssl())
                log.warning("fenced the former primary %s: it now follows this node", target)
                return
            except StaleEpochError as exc:
                log.error("%s has seen a newer epoch than ours (%s): stepping down", target, exc)
                self._fence(epoch + 1, f"{target} reports a newer epoch")
                return
            except (OSError, TimeoutError, VelocityError, ValueError) as exc:
                log.debug("fencing %s: %s; retrying", target, exc)
            await asyncio.sleep(FENCE_RETRY_S)

    # -- introspection ---------------------------------------------------------------

    def lag(self) -> tuple[int, float]:
        """(records, seconds): a replica's own lag; on a primary, the slowest replica's."""
        if not self.is_primary:
            return self.follower.lag() if self.follower is not None else (0, 0.0)
        worst = (0, 0.0)
        for f in self.feeds.values():
            worst = max(worst, self._feed_lag(f))
        return worst

    def _feed_lag(self, f: ReplicaFeed) -> tuple[int, float]:
        st = self.storage
        records = max(0, st.seq - f.acked_seq)
        if not records:
            return 0, 0.0
        t = st.backlog.time_of(f.acked_seq + 1)
        seconds = (wall_ms() - t) / 1000 if t is not None else time.time() - f.connected_at
        return records, max(0.0, seconds)

    def info(self) -> dict[str, Any]:
        st = self.storage
        lag_records, lag_seconds = self.lag()
        d: dict[str, Any] = {
            "role": self.state.role,
            "epoch": self.state.epoch,
            "seq": st.seq,
            "position": {"epoch": st.position.epoch, "seq": st.position.seq},
            "history": [list(e) for e in self.history.entries],
            "endpoint": self.endpoint,
            "mode": self.mode,
            "sync_replicas": self.quorum_required if self.mode == "sync" else 0,
            "sync_degrade": self.settings.sync_degrade,
            "backlog": {"bytes": st.backlog.bytes, "first_seq": st.backlog.first_seq, "last_seq": st.backlog.last_seq},
            "lag_records": lag_records,
            "lag_seconds": round(lag_seconds, 3),
            "promotions": self.promotions,
            "lease": None if self.lease is None else {
                "name": self.settings.lease_name, "holder": self.lease.holder,
                "writes_allowed": self.lease.writes_allowed() if self.is_primary else False,
            },
            "fenced_by": self.fenced_by,
            "handover": self.handover,
            "confirmed": self.confirmed,
            "switchover": None if self.last_switchover is None else self.last_switchover.as_dict(),
        }
        if self.is_primary:
            d["replicas_connected"] = self._live()
            until = self.read_valid_until()
            d["reads_provable_s"] = -1.0 if until == float("inf") else round(max(0.0, until - time.monotonic()), 3)
            d["replicas"] = [
                {
                    "node_id": f.node_id,
                    "endpoint": f.endpoint,
                    "state": "streaming" if f.streaming else "full_copy",
                    "acked_seq": f.acked_seq,
                    "lag_records": self._feed_lag(f)[0],
                    "lag_seconds": round(self._feed_lag(f)[1], 3),
                }
                for f in self.feeds.values()
            ]
            if self.quorum is not None:
                d["quorum_seq"] = self.quorum.position
        else:
            d["primary"] = self.state.primary
            if self.follower is not None:
                d["link"] = self.follower.info()
        return d

    def metric_families(self) -> Iterator[Any]:
        role = GaugeMetricFamily("velocity_replication_role", "1 for the role this node has now.", labels=["role"])
        role.add_metric(["primary"], 1.0 if self.is_primary else 0.0)
        role.add_metric(["replica"], 0.0 if self.is_primary else 1.0)
        yield role
        lag_records, lag_seconds = self.lag()
        yield GaugeMetricFamily(
            "velocity_replication_lag_records",
            "Batches a replica is behind its primary (on a primary: the slowest replica's).", value=lag_records,
        )
        yield GaugeMetricFamily(
            "velocity_replication_lag_seconds",
            "Seconds a replica is behind its primary (on a primary: the slowest replica's).", value=lag_seconds,
        )
        yield GaugeMetricFamily(
            "velocity_replicas_connected", "Replicas streaming from this primary.",
            value=self._live() if self.is_primary else 0,
        )
        yield GaugeMetricFamily(
            "velocity_replication_backlog_bytes", "Bytes held in the replication backlog.",
            value=self.storage.backlog.bytes,
        )
        yield GaugeMetricFamily("velocity_replication_epoch", "The highest epoch this node has seen.",
                                value=self.state.epoch)
        yield GaugeMetricFamily("velocity_replication_sequence", "Sequence number of the last batch applied.",
                                value=self.storage.seq)
        yield from lease_metric_families(self.lease)
