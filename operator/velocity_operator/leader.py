"""Leader election on a coordination.k8s.io/v1 Lease, the way Kubernetes' own controllers
do it (client-go `tools/leaderelection`), so that of several operator replicas exactly one
reconciles.

The Lease (default `velocity-system/velocity-operator`) names its holder in
`spec.holderIdentity` and is renewed every `retry_period_s` by writing `spec.renewTime`
with optimistic concurrency (PUT with the resourceVersion read, so two candidates can
never both win one round). The rules, with client-go's defaults (15 s, 10 s, 2 s):

- A candidate takes the Lease when it is free (no holder: released on shutdown) or when
  its record has not changed for `lease_duration_s`, measured on the candidate's own
  monotonic clock from the moment it *observed* the last change: the holder's
  `renewTime` is written by another clock and only ever compared for change, so clock
  skew between nodes cannot shorten a term.
- The holder gives up (`LeadershipLost`) when a renewal round could not renew within
  `renew_deadline_s`, or at once when the Lease names someone else. A round starts a
  retry period after the last renewal, so the holder stops at most `retry_period_s +
  renew_deadline_s` after it; the config requires that to be less than
  `lease_duration_s`: the old leader stops before any candidate may take over.
- On a graceful stop the holder releases the Lease (holder cleared, duration 1 s), so a
  standby takes over at its next retry instead of after a full term.

`LeaderElector` holds no kopf state: `main.run()` starts kopf only once `acquire()`
returned and stops it when `keep()` raises. `decide()` is the pure core, unit-tested
without an API server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .kube import ApiError

__all__ = [
    "DEFAULT_LEASE_NAME",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeadershipLost",
    "LeaseClient",
    "decide",
    "format_micro_time",
]

log = logging.getLogger("velocity_operator.leader")

DEFAULT_LEASE_NAME = "velocity-operator"
LEASE_API_VERSION = "coordination.k8s.io/v1"
# client-go's JitterFactor: the renew deadline must leave room for a jittered retry.
JITTER_FACTOR = 1.2


class LeadershipLost(RuntimeError):
    """This replica no longer holds the Lease: everything it runs as leader must stop."""


class LeaseClient(Protocol):
    """What the elector needs from the API (velocity_operator.kube.Kube has it)."""

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Where the Lease lives, who we are, and the three timings (seconds)."""

    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if self.lease_duration_s <= self.renew_deadline_s + self.retry_period_s:
            raise ValueError(f"the lease duration ({self.lease_duration_s:g}s) must be greater than the "
                             f"renew deadline plus the retry period ({self.renew_deadline_s:g}s + "
                             f"{self.retry_period_s:g}s)")
        if self.renew_deadline_s <= JITTER_FACTOR * self.retry_period_s:
            raise ValueError(f"the renew deadline ({self.renew_deadline_s:g}s) must be greater than "
                             f"{JITTER_FACTOR:g} x the retry period ({self.retry_period_s:g}s)")
        if self.retry_period_s <= 0:
            raise ValueError("the retry period must be positive")


def format_micro_time(when: dt.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decide(spec: dict[str, Any] | None, *, identity: str, expired: bool, duration_s: float,
           now: dt.datetime) -> dict[str, Any] | None:
    """The Lease spec to write to hold (or keep holding) the Lease, or None to keep away.

    `spec` is the current spec (None: no Lease yet); `expired` whether its record has not
    changed for a lease duration as this candidate observed it. Renewing keeps
    acquireTime and leaseTransitions; taking over sets acquireTime and counts a transition.
    """
    spec = spec or {}
    holder = spec.get("holderIdentity") or ""
    if holder and holder != identity and not expired:
        return None
    stamp = format_micro_time(now)
    transitions = int(spec.get("leaseTransitions") or 0)
    if holder == identity:  # renewing
        acquired = spec.get("acquireTime") or stamp
    else:  # taking over (a first Lease counts no transition)
        acquired, transitions = stamp, transitions + 1 if spec else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(duration_s)),
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


@dataclass
class LeaderElector:
    """One candidate. `acquire()` blocks until it leads, `keep()` renews until leadership is
    lost (then raises LeadershipLost), `release()` hands the Lease back on shutdown.

    `on_change(leading)` is called on every change of leadership (metrics, health). Not
    thread-safe: one asyncio task drives it at a time.
    """

    client: LeaseClient
    config: LeaderElectionConfig
    on_change: Callable[[bool], None] = lambda leading: None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    leading: bool = field(default=False, init=False)
    rounds: int = field(default=0, init=False)  # election rounds acquire() finished, won or not
    # The last Lease record seen (spec + resourceVersion) and when it was seen to change.
    _observed: tuple[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _observed_at: float = field(default=0.0, init=False, repr=False)

    async def try_acquire_or_renew(self) -> bool:
        """One round: True if this candidate holds the Lease afterwards. API errors propagate.

        A False round does not end a leadership by itself (a conflict or a slow answer
        must not): keep() decides that, by the renew deadline or the holder it saw."""
        cfg = self.config
        lease = await self.client.get(LEASE_API_VERSION, "Lease", cfg.namespace, cfg.name)
        now = self.wall_clock()
        if lease is None:
            spec = decide(None, identity=cfg.identity, expired=True, duration_s=cfg.lease_duration_s, now=now)
            created = await self.client.create({
                "apiVersion": LEASE_API_VERSION, "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace,
                             "labels": {"app.kubernetes.io/name": "velocity-operator",
                                        "app.kubernetes.io/component": "leader-election"}},
                "spec": spec,
            })
            if created is None:  # another candidate created it first
                return False
            self._observe(created)
            return self._set_leading(True)
        self._observe(lease)
        spec = lease.get("spec") or {}
        expired = self.clock() - self._observed_at >= cfg.lease_duration_s
        wanted = decide(spec, identity=cfg.identity, expired=expired, duration_s=cfg.lease_duration_s, now=now)
        if wanted is None:
            return False
        body = {**lease, "spec": {**spec, **wanted}}
        try:
            written = await self.client.replace(body)
        except ApiError as exc:
            if exc.status == 409:  # someone else wrote in between: they won this round
                return False
            raise
        self._observe(written)
        if not self.leading and spec.get("holderIdentity") not in (None, "", cfg.identity):
            log.info("took over Lease %s/%s from %s", cfg.namespace, cfg.name, spec.get("holderIdentity"))
        return self._set_leading(True)

    def holder(self) -> str:
        """The holder named by the last Lease record seen ('' if none)."""
        return str(((self._observed or ("", {}))[1]).get("holderIdentity") or "")

    async def acquire(self) -> None:
        """Block until this candidate holds the Lease (retry every retry period, jittered)."""
        cfg = self.config
        announced = ""
        while True:
            try:
                async with asyncio.timeout(cfg.renew_deadline_s):
                    if await self.try_acquire_or_renew():
                        log.info("%s leads (Lease %s/%s)", cfg.identity, cfg.namespace, cfg.name)
                        return
            except Exception as exc:  # any failure (API, network, timeout) is a failed round: retried
                log.warning("cannot read or take Lease %s/%s: %s", cfg.namespace, cfg.name, _describe(exc))
            finally:
                self.rounds += 1
            if self.holder() != announced:
                announced = self.holder()
                log.info("standing by: Lease %s/%s is held by %s", cfg.namespace, cfg.name, announced or "nobody")
            await asyncio.sleep(cfg.retry_period_s * (1 + random.random() * (JITTER_FACTOR - 1)))

    async def keep(self) -> None:
        """Renew every retry period while leading; raise LeadershipLost when the Lease
        names someone else, or when a renewal round (retried every retry period) has not
        succeeded within the renew deadline.

        As in client-go, each round gets the whole deadline from its start, so a process
        that was briefly starved of CPU still tries before it gives up; the Lease's
        resourceVersion keeps that safe (a renewal after someone else's takeover fails).
        A leader therefore stops at most retry period + renew deadline after its last
        renewal, which the config keeps below the lease duration."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.retry_period_s)
            deadline = self.clock() + cfg.renew_deadline_s
            while True:
                renewed = False
                try:
                    async with asyncio.timeout(max(deadline - self.clock(), 0.001)):
                        renewed = await self.try_acquire_or_renew()
                except Exception as exc:  # any failure (API, network, timeout) is a failed renewal
                    log.warning("renewing Lease %s/%s failed: %s", cfg.namespace, cfg.name, _describe(exc))
                if renewed:
                    break
                holder = self.holder()
                if holder and holder != cfg.identity:
                    self._set_leading(False)
                    raise LeadershipLost(f"Lease {cfg.namespace}/{cfg.name} is now held by {holder}")
                if self.clock() >= deadline:
                    self._set_leading(False)
                    raise LeadershipLost(f"Lease {cfg.namespace}/{cfg.name} not renewed for "
                                         f"{cfg.renew_deadline_s:g}s")
                await asyncio.sleep(min(cfg.retry_period_s, max(deadline - self.clock(), 0.0)))

    async def release(self) -> bool:
        """Give the Lease up (holder cleared, duration 1 s) if we still hold it; True if released.
        Best effort: a failure leaves the Lease to expire on its own."""
        cfg = self.config
        if not self.leading:
            return False
        self._set_leading(False)
        try:
            async with asyncio.timeout(cfg.retry_period_s):
                lease = await self.client.get(LEASE_API_VERSION, "Lease", cfg.namespace, cfg.name)
                if lease is None or (lease.get("spec") or {}).get("holderIdentity") != cfg.identity:
                    return False
                stamp = format_micro_time(self.wall_clock())
                spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1,
                        "acquireTime": stamp, "renewTime": stamp}
                await self.client.replace({**lease, "spec": spec})
        except Exception as exc:  # best effort on the way out
            log.warning("could not release Lease %s/%s (it expires in %gs): %s", cfg.namespace, cfg.name,
                        cfg.lease_duration_s, _describe(exc))
            return False
        log.info("released Lease %s/%s", cfg.namespace, cfg.name)
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        record = (str((lease.get("metadata") or {}).get("resourceVersion") or ""), dict(lease.get("spec") or {}))
        if self._observed is None or record != self._observed:
            self._observed = record
            self._observed_at = self.clock()

    def _set_leading(self, leading: bool) -> bool:
        if leading != self.leading:
            self.leading = leading
            self.on_change(leading)
        return leading


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
