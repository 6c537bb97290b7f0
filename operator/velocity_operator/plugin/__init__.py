"""`kubectl velocity`: the operator's kubectl plugin (console script `kubectl-velocity`).

Layers, each a module:

- `status`: reads a VelocityCluster and what belongs to it (pods, the primary Lease and
  the member Leases the engines publish their positions in, VelocityBackups) into one
  plain dict (`--json` prints it), and renders that dict as one screen of text;
- `requests`: what the user asks the operator for, written where the operator looks:
  a VelocityBackup, the `vdb.io/switchover-to` and `vdb.io/rotate-certificates`
  annotations;
- `connect`: the cluster's CA and token from its Secrets into a private temporary
  directory, a `kubectl port-forward` to the client Service, and `velocityctl` pointed
  at it;
- `cli`: thin click commands over the above; API errors become exit code 1 with the
  API server's message.

Every Kubernetes call goes through `velocity_operator.kube.Kube`, and every object name
through `velocity_operator.names`, the same code the operator uses.
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
