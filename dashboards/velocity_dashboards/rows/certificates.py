"""Certificates: time left on each engine's serving certificate."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target, Threshold
from velocity_dashboards.promql import sel


def row() -> Row:
    return Row("Certificates", (
        Panel("Server certificate expires in",
              "Time until each engine's TLS certificate expires (the VelocityCertificateExpiringSoon alert "
              "fires below 14 days).",
              (Target(f"min by (pod) ({sel('velocity_tls_certificate_expiry_timestamp_seconds')}) - time()",
                      "{{pod}}"),),
              unit="dtdurations", width=24, height=6,
              thresholds=(Threshold("red"), Threshold("orange", 14 * 86400), Threshold("green", 30 * 86400))),
    ))
