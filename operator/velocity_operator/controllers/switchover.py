"""Scale-down that keeps the primary: a planned switchover through the engine, then the step.

`scaling.plan_scale` decides; this module does the I/O. When the next step down would
remove the Lease holder, the operator asks that engine (V-Proto REPLICA_OF(target,
epoch 0) through the SDK's `VelocityPool.switchover`) to hand the primary role to a pod
that stays. The engine runs the whole switchover itself: fence, wait until the target
acknowledged every write, compare-and-swap the Lease (epoch + 1), promote the target.
The operator only asks, with a deadline, and takes the step once the Lease names the
target. Any failure leaves the old primary in place (the engine unfences it) and the
replicas unchanged: a Warning Event, and the next reconcile tries again.

Addressing: the operator dials the pod's IP (status.podIP), which works both in the
cluster and for an operator run on a node, with the pod's DNS name under the headless
Service as TLS server name (the server certificate covers *.NAME-headless.NS.svc);
without a pod IP it dials that DNS name. Credentials: the admin token of Secret
NAME-admin (client tokens cannot run REPLICA_OF) and Secret NAME-ca (ca.crt);
plaintext clusters (spec.tls.enabled false) run without either.

VELOCITY_OPERATOR_ENGINE_ADDRESSES (JSON {"NAMESPACE/POD": "HOST:PORT"}) overrides the
address dialled, for the tier-1 tests whose engines are local processes on free ports;
it is not meant for production.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from velocity.pool import VelocityPool
from vproto.errors import VelocityError

from .. import names
from ..api.cluster import VelocityClusterSpec
from ..builders.meta import Owner
from ..kube import Kube
from .actions import Action
from .primary import read_primary
from .scaling import ScaleKind, ScaleStep, next_replicas, plan_scale

__all__ = [
    "ADDRESSES_ENV",
    "SWITCHOVER_TIMEOUT_S",
    "EngineAccess",
    "SwitchoverError",
    "choose_target",
    "engine_endpoint",
    "request_switchover",
    "scale_replicas",
]

ADDRESSES_ENV = "VELOCITY_OPERATOR_ENGINE_ADDRESSES"
# The engine bounds its own steps (target PING 1 s, catch-up 1.5 s, Lease CAS, promote);
# this bounds the whole request, connection included, so a handler never hangs on a pod.
SWITCHOVER_TIMEOUT_S = 20.0
# A replica further behind than this is not a target while a closer one exists (it
# would likely miss the engine's catch-up bound and fail the switchover).
MAX_TARGET_LAG_S = 1.0


class SwitchoverError(Exception):
    """A switchover the operator requested did not happen; the old primary keeps the role."""

    def __init__(self, cluster: str, primary: str, target: str | None, cause: str) -> None:
        self.cluster, self.primary, self.target, self.cause = cluster, primary, target, cause
        to = f" to {target}" if target else ""
        super().__init__(f"switchover of {cluster} from {primary}{to} failed: {cause}")


@dataclass(frozen=True)
class EngineAccess:
    """How to reach and authenticate to the cluster's engines."""

    token: str | None
    ca_pem: bytes | None  # None: plaintext (spec.tls.enabled false)


def engine_endpoint(cluster: str, namespace: str, pod: str) -> str:
    """The endpoint an engine advertises (its Lease holderIdentity and replica identity)."""
    return f"vdb://{names.pod_dns_name(cluster, namespace, pod)}:{names.CLIENT_PORT}"


def choose_target(cluster: str, namespace: str, candidates: tuple[str, ...],
                  replicas: list[dict[str, Any]]) -> str | None:
    """The first candidate (preference order) streaming from the primary and close behind
    it, else the first streaming one, else None. `replicas` is the primary's INFO
    replication.replicas (endpoint, state, lag_seconds)."""
    streaming: dict[str, float] = {}
    for feed in replicas:
        pod = names.pod_of_endpoint(cluster, namespace, str(feed.get("endpoint") or ""))
        if pod is not None and feed.get("state") == "streaming":
            streaming[pod] = float(feed.get("lag_seconds") or 0.0)
    close = [c for c in candidates if c in streaming and streaming[c] <= MAX_TARGET_LAG_S]
    usable = close or [c for c in candidates if c in streaming]
    return usable[0] if usable else None


def _secret_value(secret: dict[str, Any] | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if isinstance(value, str) else None


async def _access(kube: Kube, owner: Owner, spec: VelocityClusterSpec) -> EngineAccess:
    if not spec.tls.enabled:
        return EngineAccess(None, None)
    token = _secret_value(await kube.get("v1", "Secret", owner.namespace, names.admin_secret(owner.name)), "token")
    ca = _secret_value(await kube.get("v1", "Secret", owner.namespace, names.ca_secret(owner.name)), "ca.crt")
    if ca is None:  # bring-your-own or cert-manager certificate: the CA travels with it
        server_secret = spec.tls.secret_name or names.tls_secret(owner.name)
        ca = _secret_value(await kube.get("v1", "Secret", owner.namespace, server_secret), "ca.crt")
    if token is None or ca is None:
        found = (("the admin token", token), ("the CA certificate", ca))
        missing = " and ".join(what for what, v in found if v is None)
        raise LookupError(f"cannot reach the engines of {owner.name}: {missing} not found "
                          f"(Secrets {names.admin_secret(owner.name)}, {names.ca_secret(owner.name)})")
    return EngineAccess(token.decode().strip(), ca)


def _dial_address(namespace: str, pod: dict[str, Any], cluster: str) -> str:
    name = pod["metadata"]["name"]
    override = os.environ.get(ADDRESSES_ENV)
    if override:
        address = json.loads(override).get(f"{namespace}/{name}")
        if address:
            return f"vdb://{address}"
    ip = (pod.get("status") or {}).get("podIP")
    host = ip or names.pod_dns_name(cluster, namespace, name)
    return f"vdb://{host}:{names.CLIENT_PORT}"


def _pool(address: str, server_name: str, access: EngineAccess, workdir: Path) -> VelocityPool:
    if access.ca_pem is None:
        return VelocityPool(address, None, None, 1, insecure=True, timeout=5.0, client_name="velocity-operator")
    # The SDK loads the CA from a file when the pool is built; the file is not needed after.
    ca_file = workdir / "ca.crt"
    ca_file.write_bytes(access.ca_pem)
    return VelocityPool(address, access.token, ca_file, 1, server_name=server_name, timeout=5.0,
                        client_name="velocity-operator")


async def request_switchover(kube: Kube, owner: Owner, spec: VelocityClusterSpec, primary: dict[str, Any],
                             candidates: tuple[str, ...], timeout: float = SWITCHOVER_TIMEOUT_S) -> tuple[str, float]:
    """Ask the primary's engine to hand its role to the best of `candidates`; returns
    (target, seconds writes were paused). SwitchoverError on any failure."""
    cluster, namespace = owner.name, owner.namespace
    primary_name = primary["metadata"]["name"]
    try:
        access = await _access(kube, owner, spec)
    except LookupError as exc:
        raise SwitchoverError(cluster, primary_name, None, str(exc)) from None
    target: str | None = None
    with tempfile.TemporaryDirectory(prefix="velocity-operator-") as workdir:

        async def run() -> tuple[str, float]:
            nonlocal target
            pool = _pool(_dial_address(namespace, primary, cluster),
                         names.pod_dns_name(cluster, namespace, primary_name), access, Path(workdir))
            async with pool:
                info = (await pool.info("replication"))["replication"]
                if info.get("role") != "primary":
                    raise SwitchoverError(cluster, primary_name, None, f"{primary_name} is not the primary "
                                                                       f"(role {info.get('role')})")
                target = choose_target(cluster, namespace, candidates, list(info.get("replicas") or []))
                if target is None:
                    raise SwitchoverError(cluster, primary_name, None,
                                          f"none of {', '.join(candidates)} is streaming from the primary yet")
                _epoch, _seq, pause = await pool.switchover(engine_endpoint(cluster, namespace, target))
                return target, pause

        try:
            return await asyncio.wait_for(run(), timeout)
        except SwitchoverError:
            raise
        except TimeoutError:
            raise SwitchoverError(cluster, primary_name, target, f"no answer within {timeout:.0f}s") from None
        except (VelocityError, OSError, ValueError, KeyError) as exc:
            raise SwitchoverError(cluster, primary_name, target, f"{type(exc).__name__}: {exc}") from None


async def scale_replicas(kube: Kube, owner: Owner, spec: VelocityClusterSpec, existing: dict[str, Any] | None,
                         actions: list[Action]) -> int:
    """The replicas to give the StatefulSet in this reconcile: the next step toward
    spec.replicas, after a switchover when that step would remove the primary."""
    if existing is None or spec.replicas >= int(existing["spec"].get("replicas", spec.replicas)):
        return next_replicas(spec.replicas, existing)  # create, scale up or no change: no pod goes
    selector = names.selector_string(owner.name)
    pods = await kube.list("v1", "Pod", owner.namespace, label_selector=selector)
    primary = await read_primary(kube, owner)
    step = plan_scale(owner.name, spec.replicas, existing, primary, pods)
    if step.kind is ScaleKind.WAIT:
        actions.append(Action("ScaleDownWaiting", step.reason))
    if step.kind is not ScaleKind.SWITCHOVER:
        return step.replicas
    return await _switch_then_step(kube, owner, spec, existing, pods, primary, step, actions)


async def _switch_then_step(kube: Kube, owner: Owner, spec: VelocityClusterSpec, existing: dict[str, Any],
                            pods: list[dict[str, Any]], primary: str | None, step: ScaleStep,
                            actions: list[Action]) -> int:
    primary_pod = next((p for p in pods if p["metadata"]["name"] == primary), None)
    if primary_pod is None:  # the Lease names a pod that is already gone: nothing to hand over from
        actions.append(Action("ScaleDownWaiting", f"the Lease holder {primary} has no pod: waiting for the election"))
        return step.replicas
    try:
        target, pause = await request_switchover(kube, owner, spec, primary_pod, step.candidates)
    except SwitchoverError as exc:
        # After a timeout the outcome is unknown (the Lease may have moved): the next
        # reconcile re-reads the Lease, so nothing here assumes either way.
        actions.append(Action("SwitchoverFailed", f"{exc}; no pod is removed while the Lease names one that "
                                                  "would go, retrying at the next reconcile", warning=True))
        return step.replicas
    actions.append(Action("Switchover", f"{primary} handed the primary role to {target} before scale-down "
                                        f"(writes paused {pause * 1000:.0f} ms)"))
    # The engine answers once the Lease names the target (compare-and-swap done); re-read it
    # rather than trust the reply, and step down only if the plan now allows it.
    after = await read_primary(kube, owner)
    again = plan_scale(owner.name, spec.replicas, existing, after, pods)
    return again.replicas if again.kind is ScaleKind.APPLY else step.replicas
