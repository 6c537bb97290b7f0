"""Volumes: disk usage of the log and snapshot volumes, from the kubelet's volume stats.

The kubelet labels these series with `namespace` and `persistentvolumeclaim` only (no pod),
so the PVC name is matched: a StatefulSet's claims are `<template>-<statefulset>-<ordinal>`;
the operator names its templates `aof` and `snapshots` and the StatefulSet after the
VelocityCluster (operator/velocity_operator/names.py).
"""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target

PVC = 'namespace=~"$namespace", persistentvolumeclaim=~"(aof|snapshots)-($cluster)-[0-9]+"'


def row() -> Row:
    used = f"kubelet_volume_stats_used_bytes{{{PVC}}}"
    capacity = f"kubelet_volume_stats_capacity_bytes{{{PVC}}}"
    available = f"kubelet_volume_stats_available_bytes{{{PVC}}}"
    return Row("Volumes", (
        Panel("Volume usage", "Used fraction of each log (aof) and snapshot volume.",
              (Target(f"max by (persistentvolumeclaim) ({used} / {capacity})", "{{persistentvolumeclaim}}"),),
              unit="percentunit", max=1, width=12),
        Panel("Volume free space", "Bytes available on each volume.",
              (Target(f"max by (persistentvolumeclaim) ({available})", "{{persistentvolumeclaim}}"),),
              unit="bytes", width=12),
    ))
