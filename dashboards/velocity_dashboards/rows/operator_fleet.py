"""Operator: managed clusters by phase, backups, and the certificates it manages.

Result and phase values are the operator's (operator/velocity_operator/metrics.py):
backups end `Completed` or `Failed`. The certificate and last-backup series carry the
VelocityCluster's own `cluster`/`namespace` labels (scraped with honorLabels).
"""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import op_sel


def row() -> Row:
    return Row("Clusters, backups and certificates", (
        Panel("Managed clusters by phase", "VelocityClusters the operator manages, by status phase.",
              (Target(f"sum by (phase) ({op_sel('velocity_operator_managed_clusters')})", "{{phase}}"),),
              stacked=True),
        Panel("Backups by result", "Backups finished in the last hour, by result (Completed, Failed).",
              (Target(f"sum by (result) (increase({op_sel('velocity_operator_backups_total')}[1h]))",
                      "{{result}}"),)),
        Panel("Cluster certificates expire in",
              "Time until each VelocityCluster's server certificate expires, as the operator issued it. "
              "Its cluster/namespace labels name the VelocityCluster, so only $pod filters it.",
              (Target("min by (cluster, namespace) "
                      f"({op_sel('velocity_operator_certificate_expiry_timestamp_seconds', labels=('pod',))})"
                      " - time()", "{{namespace}}/{{cluster}}"),), unit="dtdurations"),
        Panel("Time since the last backup",
              "Age of each VelocityCluster's newest Completed backup (VelocityBackupTooOld fires above 26h). "
              "Clusters that never completed a backup are not listed. Only $pod filters it.",
              (Target("time() - max by (cluster, namespace) "
                      f"({op_sel('velocity_operator_backup_last_success_timestamp_seconds', labels=('pod',))})",
                      "{{namespace}}/{{cluster}}"),), unit="dtdurations"),
    ))
