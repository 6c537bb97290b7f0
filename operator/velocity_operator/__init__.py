"""The Velocity operator: VelocityCluster and VelocityBackup reconciled with kopf.

Layers (imports only point downwards):

- `api`          the CRD types (pydantic models), the one source of the CRD YAML;
- `names`, `quantity`, `cron`, `conditions`, `tlsutil`   pure helpers;
- `builders`     pure functions: spec in, desired Kubernetes objects out;
- `kube`         the only module that talks to the API server;
- `controllers`  reconciliation split by concern (cluster, scaling, tls, status, backup);
- `handlers`     thin kopf handlers calling the controllers; `main` the entry point.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
