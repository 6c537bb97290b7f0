"""Services (pinned names and port 2005) and the PodDisruptionBudget."""

from __future__ import annotations

from velocity_operator.builders import pdb, services
from velocity_operator.builders.meta import Owner


def test_client_service(owner: Owner) -> None:
    svc = services.client_service(owner)
    assert svc["metadata"]["name"] == "alpha"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports["vproto"] == 2005
    # Only the pod the operator labelled primary (the Lease holder) receives clients.
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "velocity", "app.kubernetes.io/instance": "alpha",
                                       "vdb.io/role": "primary"}


def test_headless_service(owner: Owner) -> None:
    svc = services.headless_service(owner)
    assert svc["metadata"]["name"] == "alpha-headless"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert [p["port"] for p in svc["spec"]["ports"]] == [2005]


def test_pdb_allows_one_disruption(owner: Owner) -> None:
    obj = pdb.pod_disruption_budget(owner)
    assert obj["apiVersion"] == "policy/v1"
    assert obj["spec"]["maxUnavailable"] == 1
    assert obj["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "alpha"
