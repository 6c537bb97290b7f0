"""Lease election (`--lease-name`) on the native data plane.

The Lease agent (replication/lease.py) and the switchover (replication/switchover.py)
are the Python plane's, unchanged: they drive a LeaseHost (lease_host.py), which
here is NativeLeaseHost, every call of it a call into the core (_core.pyi). The
core, started with `lease_name`, never becomes a writable primary on its own, and
checks on its request path what the shell tells it: until when the Lease is surely
this node's (`lease_renewed`), and whether writes are fenced for a switchover
(`set_handover`). No Python runs per data request.

PROMOTE and REPLICA_OF change meaning under a Lease (lease_admin.py), so the core
hands them to the shell: a task drains `Core.admin_next` from a worker thread and
answers each request with `Core.admin_reply` / `admin_fail` once the work is done
(a switchover takes up to a few seconds). The connection that sent one answers
nothing else until then, so its replies stay in order.

Acknowledgements are not pushed by the core: `wait_for_ack` polls every
ACK_POLL_S, which bounds what the polling adds to a switchover's write pause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vproto import messages as m
from vproto.errors import ErrorCode, VelocityError
from vproto.frame import Opcode

from velocity_engine.auth import Credentials, Role
from velocity_engine.config import EngineSettings
from velocity_engine.replication.lease import LeaseAgent, LeaseConfig
from velocity_engine.replication.lease_admin import (
    check_replica_of,
    is_switchover,
    promote_by_lease,
    switch_over_to,
)
from velocity_engine.replication.lease_host import ReplicaLink
from velocity_engine.replication.switchover import SwitchoverReport, hand_over_for_shutdown
from velocity_engine.tls import client_context

if TYPE_CHECKING:
    from velocity_engine._core import Core

log = logging.getLogger(__name__)

ACK_POLL_S = 0.005  # how often a switchover re-reads the replicas' acknowledged positions
ADMIN_WAIT_S = 0.25  # one admin_next call: how long a stopping shell may wait for its thread
INFO_PUSH_S = 0.1  # how stale INFO's lease holder and switchover report may be


class _CoreRole(NamedTuple):
    """Core.role(), field by field (_core.pyi)."""

    is_primary: bool
    primary: str
    epoch: int
    seq: int
    incomplete: bool
    sync_pending: bool


class NativeLeaseHost:
    """The LeaseHost of a native engine: role and positions come from the core."""

    def __init__(self, core: Core, settings: EngineSettings, node_id: str, credentials: Credentials | None,
                 ca: Path | None) -> None:
        s = settings
        self.core = core
        self._node_id = node_id
        self._credentials = credentials
        self._ssl: Any = None if s.insecure else client_context(ca)
        self._handover = ""
        self._endpoint = str(json.loads(core.replication_state())["endpoint"])
        self.last_switchover: SwitchoverReport | None = None
        self.lease: LeaseAgent | None = LeaseAgent(self, LeaseConfig(
            s.lease_name or "", s.lease_namespace, s.lease_duration_s, s.lease_renew_s, s.lease_kubeconfig,
        ))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shown = ""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        assert self.lease is not None
        self._spawn(self.lease.run())
        self._spawn(self._serve_admin())
        self._spawn(self._push_info())
        log.info("lease election: waiting to hold Lease %s/%s before taking writes",
                 self.lease.cfg.namespace, self.lease.cfg.name)

    async def hand_over_for_shutdown(self) -> None:
        await hand_over_for_shutdown(self)
        self._show()

    async def stop(self) -> None:
        if self.lease is not None:
            self.lease.retired = True
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.lease is not None:
            await self.lease.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- PROMOTE and REPLICA_OF, handed over by the core ------------------------------

    async def _serve_admin(self) -> None:
        while True:
            req = await asyncio.to_thread(self.core.admin_next, ADMIN_WAIT_S)
            if req is not None:
                self._spawn(self._answer(*req))

    async def _answer(self, request_id: int, opcode: int, body: bytes) -> None:
        try:
            reply = await self._run_admin(opcode, body)
        except VelocityError as exc:
            self._show()  # INFO names the switchover's outcome before its caller hears of it
            self.core.admin_fail(request_id, int(exc.code), exc.message, exc.primary, exc.retry_after_ms)
            return
        except Exception as exc:  # reported to the caller, who would otherwise wait for nothing
            log.exception("opcode 0x%02x failed", opcode)
            self.core.admin_fail(request_id, int(ErrorCode.INTERNAL), f"internal error: {exc!r}")
            return
        self._show()
        self.core.admin_reply(request_id, reply)

    async def _run_admin(self, opcode: int, body: bytes) -> bytes:
        if opcode == Opcode.PROMOTE:
            epoch, seq = await promote_by_lease(self)
            return m.PromoteResponse(epoch, seq).encode()
        req = m.ReplicaOfRequest.decode(body)
        check_replica_of(self, req.primary, req.epoch)
        if is_switchover(self, req.epoch):
            return m.ReplicaOfResponse(await switch_over_to(self, req.primary)).encode()
        self.follow(req.primary, max(req.epoch, self.epoch), reason=f"REPLICA_OF epoch {req.epoch}")
        return m.ReplicaOfResponse(self.epoch).encode()

    # -- INFO: the fields only the shell knows ---------------------------------------

    async def _push_info(self) -> None:
        while True:
            self._show()
            await asyncio.sleep(INFO_PUSH_S)

    def _show(self) -> None:
        report = self.last_switchover
        shown = json.dumps({
            "holder": self.lease.holder if self.lease is not None else "",
            "switchover": report.as_dict() if report is not None else None,
        })
        if shown != self._shown:
            self.core.set_lease_info(shown)
            self._shown = shown

    def _role(self) -> _CoreRole:
        return _CoreRole(*self.core.role())

    # -- LeaseHost ---------------------------------------------------------------------

    @property
    def handover(self) -> str:
        return self._handover

    @handover.setter
    def handover(self, target: str) -> None:
        self._handover = target
        self.core.set_handover(target)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def seq(self) -> int:
        return self._role().seq

    @property
    def incomplete(self) -> bool:
        return self._role().incomplete

    @property
    def epoch(self) -> int:
        return self._role().epoch

    @property
    def current_primary(self) -> str:
        return self._role().primary

    @property
    def is_primary(self) -> bool:
        return self._role().is_primary

    def promote_for_lease(self, min_epoch: int) -> None:
        self.core.promote(min_epoch)

    def follow_lease_holder(self, holder: str, epoch: int) -> None:
        self.follow(holder, max(epoch, self.epoch), reason=f"the lease is held by {holder}")

    def follow(self, primary: str, epoch: int, reason: str) -> None:
        self.core.replica_of(primary, epoch)
        log.warning("now a replica of %s (epoch %d): %s", primary, epoch, reason)

    def fence_for_lease(self, reason: str, keep_feeds: bool = False) -> None:
        if self.is_primary:
            self.core.fence(reason, keep_feeds)
            log.error("fenced: %s; writes are refused until a primary is set", reason)

    def lease_renewed(self, writes_until: float) -> None:
        self.core.lease_renewed(writes_until - time.monotonic())

    def links(self) -> list[ReplicaLink]:
        return [ReplicaLink(*link) for link in self.core.replica_links()]

    async def wait_for_ack(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, ACK_POLL_S))

    def sync_pending(self) -> bool:
        return self._role().sync_pending

    def cut_replica_streams(self) -> None:
        self.core.fence("shutting down", False)

    def redirects_sent(self) -> int:
        return int(self.core.stats()["errors"][ErrorCode.REDIRECT])

    def admin_token(self) -> str | None:
        return self._credentials.token(Role.ADMIN) if self._credentials is not None else None

    def client_ssl(self) -> Any:
        return self._ssl
