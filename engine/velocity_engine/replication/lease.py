"""Primary election with Kubernetes Leases (coordination.k8s.io/v1), run inside the engine.

Objects, in one namespace:

- Lease NAME: the primary's. holderIdentity is the primary's endpoint
  (vdb://HOST:PORT); annotation `vdb.io/epoch` is its epoch.
- Lease NAME-member-NODE_ID, one per node (label `vdb.io/lease=NAME`):
  holderIdentity is the node's endpoint, annotation `vdb.io/seq` its log
  position, renewed by the node every `renew_s`.

Every `renew_s`, each node's agent:

- as primary: renews NAME (optimistic concurrency on resourceVersion). If
  NAME is held by someone else, a newer primary exists: follow it. If it
  could not renew for `duration_s - 2 * renew_s`, it stops taking writes
  (fencing) before anyone else may consider the lease expired.
- as replica: watches NAME. When its record has not changed for
  `duration_s`, or for the longer duration its holder wrote into it
  (`leaseDurationSeconds`), measured on the local monotonic clock from when
  this agent last saw it change (as client-go does, so clock skew does not
  matter), the lease is expired; the live member with the highest position
  (ties: the lowest node id) takes it with a compare-and-swap and promotes itself with
  the next epoch; the others follow whoever holds it. Members publish their
  position every `renew_s` and a lease lasts `duration_s` > 2 * renew_s, so
  by the time NAME has expired every live member's final position is known:
  in sync mode the winner holds every acknowledged write.

A node with the lease enabled never starts as a writable primary on its own:
it waits until it holds NAME.

The holder writes its own duration into NAME whenever it acquires, renews or
confirms it, and replicas wait for the longer of theirs and that one: while a
change of the timing rolls through the nodes (some run the old settings, some
the new), no replica takes NAME before the holder's own deadline has passed.

Planned changes of holder (switchover.py) go through the same object: the
primary hands NAME to a replica with one compare-and-swap (`hand_to`), the
replica confirms it holds it and renews it before it promotes itself
(`take_over`), and a primary that stops without a successor empties the
holder (`release`) so that the others need not wait for it to expire.
Rounds and these changes hold `lock`, so a renewal never races them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from velocity_engine.replication.errors import LeaseConflict, LeaseNotHeld, LeaseOutcomeUnknown

if TYPE_CHECKING:
    from velocity_engine.replication.lease_host import LeaseHost

log = logging.getLogger(__name__)

EPOCH = "vdb.io/epoch"
API_TIMEOUT_S = 2.0  # one API call of a switchover or release: bounded, so is the whole operation
SEQ = "vdb.io/seq"
GROUP = "vdb.io/lease"


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    name: str
    namespace: str
    duration_s: float
    renew_s: float
    kubeconfig: Path | None  # None: the pod's service account


class _MicroTime(dt.datetime):
    """A datetime that always serialises with microseconds, as Kubernetes MicroTime requires."""

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        return super().isoformat(sep, timespec)


def _now() -> dt.datetime:
    n = dt.datetime.now(dt.UTC)
    return _MicroTime(n.year, n.month, n.day, n.hour, n.minute, n.second, n.microsecond, dt.UTC)


def _age_s(t: Any) -> float:
    """Seconds since a Lease time field (a datetime once read back), large if unset."""
    if not isinstance(t, dt.datetime):
        return 1e9
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return float((dt.datetime.now(dt.UTC) - t).total_seconds())


class LeaseAgent:
    def __init__(self, repl: LeaseHost, cfg: LeaseConfig) -> None:
        self.repl = repl
        self.cfg = cfg
        self.identity = ""
        self.last_renewed = 0.0  # monotonic time of our last successful renewal as primary
        self._seen_version = ""
        self._seen_at = time.monotonic()
        self.holder = ""
        self.errors = 0
        self._api: Any = None
        self._mine: Any = None  # NAME as our last renewal wrote it (its resourceVersion included)
        self.lock = asyncio.Lock()
        self.retired = False  # shutting down: no more rounds, never take the lease again
        # Counters for the metrics (lease_metrics.py); the process is their scope.
        self.renewals = 0
        self.round_errors = 0
        self.acquisitions = 0
        self.handed_over = 0
        self.released = 0
        self.last_renew_wall = 0.0  # time.time() of the last successful renewal or acquisition

    async def _connect(self) -> Any:
        configuration = client.Configuration()
        if self.cfg.kubeconfig is None:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(config_file=str(self.cfg.kubeconfig), client_configuration=configuration)
        return client.CoordinationV1Api(client.ApiClient(configuration))

    def declared_duration_s(self) -> int:
        """The duration this node writes into the Leases it holds: whole seconds, rounded up."""
        return max(1, math.ceil(self.cfg.duration_s))

    def expiry_s(self, lease: Any) -> float:
        """How long NAME must stay unchanged before this node may consider it expired: its own
        duration, or the one the holder declared in it if that is longer."""
        declared = getattr(getattr(lease, "spec", None), "lease_duration_seconds", None) or 0
        return max(self.cfg.duration_s, float(declared))

    def writes_allowed(self) -> bool:
        """A primary may take writes only while its lease is surely still its own."""
        return time.monotonic() < self._writes_until()

    def _writes_until(self) -> float:
        return self.last_renewed + self.cfg.duration_s - 2 * self.cfg.renew_s

    def _renewed(self, t0: float) -> None:
        """A renewal or acquisition sent at monotonic time t0 succeeded (measured from before
        the request: conservative); the host learns until when it may serve."""
        self.last_renewed = t0
        self.last_renew_wall = time.time()
        self.repl.lease_renewed(self._writes_until())

    async def run(self) -> None:
        self.identity = self.repl.endpoint
        while not self.retired:
            try:
                async with self.lock:
                    if self.retired:
                        break
                    await self._ensure_api()
                    await self._publish_member()
                    await self._step()
                self.errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server is unreachable or refused: keep trying
                self.errors += 1
                self.round_errors += 1
                if self.errors in (1, 10) or self.errors % 100 == 0:
                    log.warning("lease %s/%s: %s", self.cfg.namespace, self.cfg.name, exc)
            if self.repl.is_primary and not self.writes_allowed():
                self.repl.fence_for_lease("could not renew the lease in time")
            await asyncio.sleep(self.cfg.renew_s)

    async def _ensure_api(self) -> None:
        if self._api is None:
            self._api = await self._connect()

    def holds(self) -> bool:
        """This node is the primary by the lease and may still write."""
        return self.repl.is_primary and self.holder == self.identity and self.writes_allowed()

    async def close(self) -> None:
        if self._api is not None:
            await self._api.api_client.close()

    # -- one round -----------------------------------------------------------------------

    async def _publish_member(self) -> None:
        name = f"{self.cfg.name}-member-{self.repl.node_id}"
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=name, labels={GROUP: self.cfg.name}, annotations={SEQ: str(self.repl.seq)}
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity, lease_duration_seconds=self.declared_duration_s(),
                renew_time=_now(),
            ),
        )
        try:
            cur = await self._api.read_namespaced_lease(name, self.cfg.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self._api.create_namespaced_lease(self.cfg.namespace, body)
            return
        body.metadata.resource_version = cur.metadata.resource_version
        await self._api.replace_namespaced_lease(name, self.cfg.namespace, body)

    async def _step(self) -> None:
        ns, name = self.cfg.namespace, self.cfg.name
        try:
            lease = await self._api.read_namespaced_lease(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = None
        if lease is None:
            if await self._best_candidate():
                await self._acquire(None)
            return
        version = lease.metadata.resource_version
        if version != self._seen_version:
            self._seen_version = version
            self._seen_at = time.monotonic()
        holder = lease.spec.holder_identity or ""
        self.holder = holder
        epoch = int((lease.metadata.annotations or {}).get(EPOCH, "0"))
        if holder == self.identity:
            if self.repl.is_primary:
                await self._renew(lease)
            elif time.monotonic() - self._seen_at < self.cfg.duration_s - 2 * self.cfg.renew_s:
                if epoch > self.repl.epoch:
                    # A primary handed it to us (switchover) and its PROMOTE has not arrived
                    # (yet): take the role in the epoch it chose, which nobody has used.
                    await self._confirm(lease)
                else:
                    # Still ours (say, after a quick restart): take the role back.
                    await self._acquire(lease)
            return
        expired = time.monotonic() - self._seen_at > self.expiry_s(lease)
        if expired or not holder:
            if await self._best_candidate():
                await self._acquire(lease)
            return
        # Someone else holds a live lease: it is the primary.
        if self.repl.is_primary or self.repl.current_primary != holder:
            self.repl.follow_lease_holder(holder, epoch)

    async def _renew(self, lease: Any) -> None:
        lease.spec.renew_time = _now()
        lease.spec.lease_duration_seconds = self.declared_duration_s()
        t0 = time.monotonic()
        self._mine = await self._api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, _writable(lease))
        self._renewed(t0)
        self.renewals += 1

    async def _acquire(self, lease: Any) -> None:
        if self.repl.incomplete:
            return
        epoch = max(self.repl.epoch, int(((lease.metadata.annotations or {}) if lease else {}).get(EPOCH, "0")))
        new_epoch = epoch + 1
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.cfg.name, annotations={EPOCH: str(new_epoch)}),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity, lease_duration_seconds=self.declared_duration_s(),
                acquire_time=_now(), renew_time=_now(),
                lease_transitions=((lease.spec.lease_transitions or 0) + 1) if lease is not None else 0,
            ),
        )
        t0 = time.monotonic()
        try:
            if lease is None:
                await self._api.create_namespaced_lease(self.cfg.namespace, body)
            else:
                body.metadata.resource_version = lease.metadata.resource_version
                await self._api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, body)
        except ApiException as exc:
            if exc.status in (409, 422):
                return  # someone else won the race
            raise
        self._renewed(t0)
        self.acquisitions += 1
        self.holder = self.identity
        self.repl.promote_for_lease(new_epoch - 1)
        log.warning("acquired lease %s/%s: primary of epoch %d", self.cfg.namespace, self.cfg.name, new_epoch)

    async def _best_candidate(self) -> bool:
        """Whether this node has the highest position among the live members (ties: lowest node id)."""
        if self.repl.incomplete:
            return False
        members = await self._api.list_namespaced_lease(self.cfg.namespace, label_selector=f"{GROUP}={self.cfg.name}")
        best: tuple[int, str] | None = None
        for item in members.items:
            if _age_s(item.spec.renew_time) > self.cfg.duration_s:
                continue  # not alive
            seq = int((item.metadata.annotations or {}).get(SEQ, "0"))
            node = item.metadata.name.rsplit("-member-", 1)[-1]
            key = (-seq, node)
            if best is None or key < best:
                best = key
        return best is not None and best[1] == self.repl.node_id


    # -- planned changes of holder (the caller holds `lock`) ------------------------------

    async def _read(self) -> Any:
        return await self._api.read_namespaced_lease(self.cfg.name, self.cfg.namespace,
                                                     _request_timeout=API_TIMEOUT_S)

    async def hand_to(self, target: str, epoch: int) -> None:
        """Compare-and-swap NAME from this node to `target` with epoch `epoch`.

        Raises LeaseNotHeld if NAME is not ours (nothing changed), LeaseConflict
        if it changed under us (409: nothing changed), LeaseOutcomeUnknown if the
        request failed in a way that leaves its outcome open (re-read NAME)."""
        await self._ensure_api()
        # What our last renewal wrote saves a round trip; if someone wrote NAME since, the
        # compare-and-swap fails (409) and we try once more from a fresh read.
        cached, self._mine = self._mine, None
        try:
            await self._hand(cached or await self._read(), target, epoch)
        except LeaseConflict:
            if cached is None:
                raise
            await self._hand(await self._read(), target, epoch)
        self.holder = target
        self.handed_over += 1

    async def _hand(self, lease: Any, target: str, epoch: int) -> None:
        holder = lease.spec.holder_identity or ""
        if holder != self.identity:
            raise LeaseNotHeld(f"Lease {self.cfg.namespace}/{self.cfg.name} is held by {holder or 'nobody'}, "
                               f"not by this node ({self.identity})")
        lease.metadata.annotations = {**(lease.metadata.annotations or {}), EPOCH: str(epoch)}
        lease.spec.holder_identity = target
        lease.spec.acquire_time = _now()
        lease.spec.renew_time = _now()
        lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
        try:
            # lease.metadata.resource_version is the one just read: the API
            # server applies this only if nobody wrote NAME in between.
            await self._api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, _writable(lease),
                                                     _request_timeout=API_TIMEOUT_S)
        except ApiException as exc:
            if exc.status in (409, 422):
                raise LeaseConflict(f"Lease {self.cfg.name} changed during the switchover: {exc.reason}") from exc
            raise LeaseOutcomeUnknown(f"handing Lease {self.cfg.name} to {target}: {exc.status} {exc.reason}") from exc
        except (TimeoutError, OSError) as exc:
            raise LeaseOutcomeUnknown(f"handing Lease {self.cfg.name} to {target}: {exc!r}") from exc

    async def current_holder(self) -> str:
        await self._ensure_api()
        lease = await self._read()
        self.holder = lease.spec.holder_identity or ""
        return self.holder

    async def take_over(self) -> int:
        """PROMOTE under Lease election: if NAME names this node (a primary handed it over),
        renew it and become the primary of its epoch (unless already done); returns the epoch.
        LeaseNotHeld otherwise: only the Lease makes a primary."""
        await self._ensure_api()
        lease = await self._read()
        epoch = self._take(lease)
        if not self.repl.is_primary or self.repl.epoch < epoch:
            await self._confirm(lease)
        return epoch

    def _take(self, lease: Any) -> int:
        """The epoch a handed-over `lease` carries; checks that it names this node."""
        holder = lease.spec.holder_identity or ""
        if holder != self.identity:
            raise LeaseNotHeld(f"Lease {self.cfg.namespace}/{self.cfg.name} is held by {holder or 'nobody'}")
        return int((lease.metadata.annotations or {}).get(EPOCH, "0"))

    async def _confirm(self, lease: Any) -> None:
        """Renew a Lease handed to this node (a compare-and-swap, as every write), then promote
        to its epoch: writes start only under a renewal of our own."""
        epoch = int((lease.metadata.annotations or {}).get(EPOCH, "0"))
        if self.repl.incomplete:
            raise LeaseNotHeld("this node's first full copy has not finished: it cannot take the Lease")
        lease.spec.renew_time = _now()
        lease.spec.lease_duration_seconds = self.declared_duration_s()
        t0 = time.monotonic()
        await self._api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, _writable(lease),
                                                 _request_timeout=API_TIMEOUT_S)
        self._renewed(t0)
        self.acquisitions += 1
        self.renewals += 1
        self.holder = self.identity
        self.repl.promote_for_lease(epoch - 1)
        log.warning("took over lease %s/%s handed to this node: primary of epoch %d",
                    self.cfg.namespace, self.cfg.name, epoch)

    async def release(self) -> None:
        """Empty NAME's holder (if it is ours) and withdraw our member Lease: the others elect
        a successor at their next round instead of waiting for NAME to expire."""
        await self._ensure_api()
        lease = await self._read()
        if (lease.spec.holder_identity or "") == self.identity:
            lease.spec.holder_identity = ""
            lease.spec.renew_time = _now()
            await self._api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, _writable(lease),
                                                     _request_timeout=API_TIMEOUT_S)
            self.holder = ""
            self.released += 1
        await self.withdraw()

    async def withdraw(self) -> None:
        """Mark this node's member Lease as not alive (renewTime at the Unix epoch), so that no
        election waits for a node that is leaving. An update, not a delete: the engines'
        Role grants no delete (operator builders/engine_rbac.py), and the node republishes
        it when it starts again."""
        await self._ensure_api()
        name = f"{self.cfg.name}-member-{self.repl.node_id}"
        try:
            member = await self._api.read_namespaced_lease(name, self.cfg.namespace, _request_timeout=API_TIMEOUT_S)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        member.spec.renew_time = _MicroTime(1970, 1, 1, 0, 0, 0, 0, dt.UTC)
        await self._api.replace_namespaced_lease(name, self.cfg.namespace, _writable(member),
                                                 _request_timeout=API_TIMEOUT_S)


def _writable(lease: Any) -> Any:
    """The Lease as read, ready to send back (times re-serialised with microseconds)."""
    t = lease.spec.acquire_time
    if isinstance(t, dt.datetime):
        t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
        lease.spec.acquire_time = _MicroTime(
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, dt.UTC
        )
    return lease
