"""`velocity-operator`: run the operator (kopf) with its metrics and health endpoints.

    velocity-operator [--kubeconfig FILE] [--namespace NS]... [--metrics-port 8080]
                      [--liveness-port 8081] [--default-image velocity/engine:dev]
                      [--leader-elect [--leader-elect-resource-namespace NS] ...]

Without --namespace it watches every namespace. /metrics on --metrics-port; /healthz on
--liveness-port (JSON: whether this replica leads, who holds the Lease).

With --leader-elect (what the Deployment and the Helm chart run, two replicas) a replica
starts kopf only once it holds the Lease NS/velocity-operator (velocity_operator.leader):
until then it serves /metrics and /healthz and nothing else, so no handler, timer or
daemon of a standby ever runs. A leader that cannot renew the Lease stops kopf and exits
with status 1 (the kubelet restarts it as a standby); on SIGTERM it stops kopf, then
releases the Lease so that a standby takes over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from . import __version__
from .builders.statefulset import DEFAULT_IMAGE
from .controllers import Settings
from .kube import connect
from .leader import DEFAULT_LEASE_NAME, LeaderElectionConfig, LeaderElector, LeadershipLost
from .metrics import METRICS_PORT, OperatorMetrics

if TYPE_CHECKING:  # handlers registers with kopf on import: main() imports it at run time
    from .handlers import Runtime

__all__ = ["Health", "leader_election_config", "main", "parse_args", "run"]

log = logging.getLogger("velocity_operator")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# How long kopf gets to stop after leadership was lost before the process exits anyway:
# well inside the margin (lease duration - renew deadline) before a standby may take over.
STOP_AFTER_LOSS_S = 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="velocity-operator", description="The Velocity Kubernetes operator.")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account, "
                                             "else $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable; default: all namespaces)")
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT, help="port of /metrics [8080]")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address of /metrics [0.0.0.0]")
    parser.add_argument("--liveness-port", type=int, default=8081,
                        help="port of /healthz; 0 turns the endpoint off [8081]")
    parser.add_argument("--default-image", default=os.environ.get("VELOCITY_ENGINE_IMAGE", DEFAULT_IMAGE),
                        help=f"engine image for clusters without spec.image (env VELOCITY_ENGINE_IMAGE) "
                             f"[{DEFAULT_IMAGE}]")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    election = parser.add_argument_group(
        "leader election", "run several replicas, of which the holder of a coordination.k8s.io Lease "
                           "reconciles (flag names and defaults as in kube-controller-manager)")
    election.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=False,
                          help="reconcile only while holding the Lease [off]")
    election.add_argument("--leader-elect-resource-name", default=DEFAULT_LEASE_NAME,
                          help=f"name of the Lease [{DEFAULT_LEASE_NAME}]")
    election.add_argument("--leader-elect-resource-namespace", default=None,
                          help="namespace of the Lease [$POD_NAMESPACE, else the service account's]")
    election.add_argument("--leader-elect-identity", default=None,
                          help="this replica's holderIdentity [$POD_NAME or the host name, plus a random suffix]")
    election.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS",
                          help="how long standbys wait after the last renewal they saw before taking over [15]")
    election.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS",
                          help="how long the leader keeps trying to renew before it stops [10]")
    election.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS",
                          help="how often the Lease is renewed, and tried by standbys [2]")
    parser.add_argument("--version", action="version", version=f"velocity-operator {__version__}")
    args = parser.parse_args(argv)
    try:
        args.leader_election = leader_election_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def leader_election_config(args: argparse.Namespace) -> LeaderElectionConfig | None:
    """The election settings from the flags (None: --leader-elect is off). ValueError when
    a setting is invalid or the Lease's namespace cannot be found."""
    if not args.leader_elect:
        return None
    namespace = args.leader_elect_resource_namespace or os.environ.get("POD_NAMESPACE")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not namespace:
        raise ValueError("--leader-elect needs --leader-elect-resource-namespace outside a cluster")
    # Unique per process, as client-go does: a restarted container never mistakes the
    # Lease of its predecessor for its own.
    identity = args.leader_elect_identity or \
        f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaderElectionConfig(
        namespace=namespace, name=args.leader_elect_resource_name, identity=identity,
        lease_duration_s=args.leader_elect_lease_duration, renew_deadline_s=args.leader_elect_renew_deadline,
        retry_period_s=args.leader_elect_retry_period)


@dataclass
class Health:
    """What /healthz reports. Healthy: a standby whose election loop has run a round, or a
    leader whose kopf finished its startup (kopf's ready flag); 503 while starting."""

    leader_election: bool
    elector: LeaderElector | None = None  # set once connected (leader election only)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def report(self) -> tuple[int, dict[str, Any]]:
        elector = self.elector
        if self.leader_election and elector is None:
            leading, ok = False, False
        else:
            leading = elector.leading if elector is not None else True
            # A standby is healthy once its first election round is done (it knows the holder).
            ok = self.ready.is_set() if leading else elector is not None and elector.rounds > 0
        body = {"status": "ok" if ok else "starting", "leaderElection": self.leader_election, "leader": leading,
                "identity": elector.config.identity if elector else "", "holder": elector.holder() if elector else ""}
        return (200 if ok else 503), body


async def _serve_health(health: Health, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        status, body = health.report()
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


OperatorFactory = Callable[[asyncio.Event | None], Coroutine[Any, Any, None]]


async def run(runtime: Runtime, metrics: OperatorMetrics, *, election: LeaderElectionConfig | None,
              namespaces: list[str], liveness_port: int) -> int:
    """Run the operator until it is stopped; returns the process exit status."""
    health = Health(leader_election=election is not None)
    runner = await _serve_health(health, liveness_port) if liveness_port else None

    def operator(stop: asyncio.Event | None) -> Coroutine[Any, Any, None]:
        return kopf.operator(
            standalone=True,  # no kopf peering: leader election (or a single replica) decides who runs
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=stop,  # besides SIGTERM/SIGINT, which kopf handles itself
            ready_flag=health.ready,
            memo=kopf.Memo(runtime=runtime),
        )

    try:
        if election is None:
            metrics.leader.set(1)
            await operator(None)
            return 0
        return await _run_elected(operator, runtime, metrics, election, health)
    finally:
        if runner is not None:
            await runner.cleanup()


async def _run_elected(operator: OperatorFactory, runtime: Runtime, metrics: OperatorMetrics,
                       election: LeaderElectionConfig, health: Health) -> int:
    metrics.leader.set(0)
    kube = await connect(runtime.kubeconfig)
    elector = LeaderElector(kube, election, on_change=lambda leading: metrics.leader.set(1 if leading else 0))
    health.elector = elector
    try:
        # Standing by: only SIGTERM/SIGINT end it. kopf installs its own handlers once it
        # runs; a signal that came just before is passed on as its stop flag.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        acquiring = asyncio.create_task(elector.acquire(), name="leader election: acquire")
        stopping = asyncio.create_task(stop.wait(), name="leader election: stop signal")
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquiring.done():
            acquiring.cancel()
            log.info("stopped while standing by")
            return 0
        acquiring.result()
        # The renewal task exists before kopf starts, so kopf's shutdown leaves it alone.
        keeping = asyncio.create_task(elector.keep(), name="leader election: renew")
        running = asyncio.create_task(operator(stop), name="kopf operator")
        await asyncio.wait({keeping, running}, return_when=asyncio.FIRST_COMPLETED)
        if keeping.done():
            exc = keeping.exception()
            log.error("leadership lost, stopping: %s", exc if isinstance(exc, LeadershipLost) else repr(exc))
            running.cancel()
            await asyncio.wait({running}, timeout=STOP_AFTER_LOSS_S)
            if not running.done():
                log.error("kopf did not stop within %gs of losing leadership: exiting now", STOP_AFTER_LOSS_S)
                logging.shutdown()
                os._exit(1)
            return 1
        # kopf stopped (SIGTERM, or a failure): hand the Lease over, then report how it ended.
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        await elector.release()
        running.result()
        return 0
    finally:
        await kube.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # what kopf's own login reads
    from . import handlers  # registers the handlers with kopf

    metrics = OperatorMetrics()
    start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    runtime = handlers.Runtime(settings=Settings(default_image=args.default_image), metrics=metrics,
                               kubeconfig=args.kubeconfig)
    election: LeaderElectionConfig | None = args.leader_election
    if election is not None:
        log.info("leader election on: Lease %s/%s, identity %s (duration %gs, renew deadline %gs, retry %gs)",
                 election.namespace, election.name, election.identity, election.lease_duration_s,
                 election.renew_deadline_s, election.retry_period_s)
    sys.exit(asyncio.run(run(runtime, metrics, election=election, namespaces=args.namespace,
                             liveness_port=args.liveness_port)))


if __name__ == "__main__":
    main()
