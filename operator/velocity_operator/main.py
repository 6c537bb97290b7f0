"""`velocity-operator`: run the operator (kopf) with its metrics endpoint.

    velocity-operator [--kubeconfig FILE] [--namespace NS]... [--metrics-port 8080]
                      [--liveness-port 8081] [--default-image velocity/engine:dev]

Without --namespace it watches every namespace. /metrics on --metrics-port; kopf's
liveness probe on http://0.0.0.0:LIVENESS/healthz.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf
from prometheus_client import start_http_server

from . import __version__
from .builders.statefulset import DEFAULT_IMAGE
from .controllers import Settings
from .metrics import METRICS_PORT, OperatorMetrics

__all__ = ["main", "parse_args"]


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
    parser.add_argument("--version", action="version", version=f"velocity-operator {__version__}")
    return parser.parse_args(argv)


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
    asyncio.run(kopf.operator(
        standalone=True,  # one replica (Deployment strategy Recreate): no peering CRDs needed
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        # kopf reads port 0 in a URL as "no port" and binds 80, so 0 means no endpoint.
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
        memo=kopf.Memo(runtime=runtime),
    ))


if __name__ == "__main__":
    main()
