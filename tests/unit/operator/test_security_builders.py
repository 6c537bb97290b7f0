"""Issue 11 on the operator side: split credentials, the engines' narrowed Role and its
Leases, and the optional NetworkPolicy, as pure builders and against a fake API."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any, cast

import pytest
from pydantic import ValidationError
from velocity_operator.api.cluster import VelocityClusterStatus
from velocity_operator.api.network import NetworkPolicySpec
from velocity_operator.builders import network_policy, secrets
from velocity_operator.builders.meta import Owner
from velocity_operator.builders.status import cluster_status
from velocity_operator.controllers.actions import Action
from velocity_operator.controllers.cluster import ensure_engine_identity, reconcile_network_policy
from velocity_operator.controllers.tls import ensure_tokens
from velocity_operator.kube import Kube, resource_for

from .conftest import make_spec

# -- credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), [("client", "alpha-auth"), ("admin", "alpha-admin"),
                                            ("replication", "alpha-replication")])
def test_each_credential_has_its_own_secret_under_key_token(owner: Owner, kind: secrets.TokenKind,
                                                             name: str) -> None:
    secret = secrets.token_secret(owner, kind, "t0k3n")
    assert secret["metadata"]["name"] == name == secrets.token_secret_name("alpha", kind)
    assert base64.b64decode(secret["data"]["token"]) == b"t0k3n" and set(secret["data"]) == {"token"}
    assert secret["metadata"]["labels"]["vdb.io/credential"] == kind
    assert secret["metadata"]["ownerReferences"][0]["uid"] == owner.uid


def test_status_says_where_each_credential_lives() -> None:
    status = cluster_status(cluster="alpha", spec=make_spec(), generation=1, statefulset=None, previous={},
                            now=_now(), image="img")
    assert status["credentials"] == {"clientSecret": "alpha-auth", "adminSecret": "alpha-admin",
                                     "replicationSecret": "alpha-replication", "caSecret": "alpha-ca"}
    VelocityClusterStatus.model_validate(status)  # the CRD's status schema accepts it
    plain = cluster_status(cluster="alpha", spec=make_spec(tls={"enabled": False}), generation=1,
                           statefulset=None, previous={}, now=_now(), image="img")
    assert "credentials" not in plain


def _now() -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class FakeKube:
    """The few Kube calls the controllers below make, over a dict of objects."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        return obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        resource_for(api_version, kind)
        self.calls.append(("get", kind, name))
        return self.objects.get((kind, namespace or "", name))

    async def list(self, api_version: str, kind: str, namespace: str | None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        key, _, value = (label_selector or "").partition("=")
        return [o for (k, ns, _), o in self.objects.items() if k == kind and ns == namespace
                and (not key or (o["metadata"].get("labels") or {}).get(key) == value)]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        resource_for(obj["apiVersion"], obj["kind"])
        self.calls.append(("create", obj["kind"], obj["metadata"]["name"]))
        if self._key(obj) in self.objects:
            return None
        self.objects[self._key(obj)] = obj
        return obj

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        resource_for(obj["apiVersion"], obj["kind"])
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        self.objects[self._key(obj)] = obj
        return obj

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
                     *, propagation: str = "Background") -> bool:
        self.calls.append(("delete", kind, name))
        return self.objects.pop((kind, namespace or "", name), None) is not None


def test_existing_cluster_gets_admin_and_replication_secrets_once(owner: Owner) -> None:
    kube = FakeKube()
    kube.objects[("Secret", "prod", "alpha-auth")] = secrets.auth_secret(owner, "the-clients-token")
    actions: list[Action] = []
    asyncio.run(ensure_tokens(cast(Kube, kube), owner, actions))
    tokens = {name: base64.b64decode(obj["data"]["token"]).decode()
              for (kind, _, name), obj in kube.objects.items() if kind == "Secret"}
    assert set(tokens) == {"alpha-auth", "alpha-admin", "alpha-replication"}
    assert tokens["alpha-auth"] == "the-clients-token"  # never replaced
    assert len(set(tokens.values())) == 3  # the engine refuses two roles with one token
    assert [a.reason for a in actions] == ["TokenCreated", "TokenCreated"]
    again: list[Action] = []
    asyncio.run(ensure_tokens(cast(Kube, kube), owner, again))
    assert again == [] and {base64.b64decode(o["data"]["token"]).decode() for (k, _, _), o in kube.objects.items()
                            if k == "Secret"} == set(tokens.values())


# -- the engines' Role and Leases ------------------------------------------------------


def test_operator_creates_the_leases_the_engines_may_not(owner: Owner) -> None:
    kube = FakeKube()
    # A member Lease of a pod from before the node-id init container (random id).
    legacy = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
              "metadata": {"name": "alpha-primary-member-9c1d", "namespace": "prod",
                           "labels": {"vdb.io/lease": "alpha-primary"}}, "spec": {"holderIdentity": "x"}}
    kube.objects[("Lease", "prod", "alpha-primary-member-9c1d")] = legacy
    actions: list[Action] = []
    asyncio.run(ensure_engine_identity(cast(Kube, kube), owner, 2, actions))
    leases = sorted(name for kind, _, name in kube.objects if kind == "Lease")
    assert leases == ["alpha-primary", "alpha-primary-member-0", "alpha-primary-member-1",
                      "alpha-primary-member-9c1d"]
    role = kube.objects[("Role", "prod", "alpha-engine")]
    assert "alpha-primary-member-9c1d" in role["rules"][0]["resourceNames"]
    assert all("create" not in rule["verbs"] for rule in role["rules"])
    assert [a.reason for a in actions] == ["LeaseCreated"]
    # Leases that exist (the engines took them) are never written again.
    kube.objects[("Lease", "prod", "alpha-primary")]["spec"] = {"holderIdentity": "vdb://alpha-0"}
    kube.calls.clear()
    asyncio.run(ensure_engine_identity(cast(Kube, kube), owner, 2, []))
    assert not [c for c in kube.calls if c[0] == "create"]
    assert kube.objects[("Lease", "prod", "alpha-primary")]["spec"] == {"holderIdentity": "vdb://alpha-0"}


# -- NetworkPolicy ---------------------------------------------------------------------


def _rules(policy: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
    return [(rule["ports"][0]["port"], rule["from"]) for rule in policy["spec"]["ingress"]]


def test_network_policy_defaults(owner: Owner) -> None:
    spec = make_spec(networkPolicy={"enabled": True})
    policy = network_policy.network_policy(owner, spec.network_policy)
    assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["metadata"]["name"] == "alpha"
    assert policy["spec"]["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": "velocity", "app.kubernetes.io/instance": "alpha",
        "app.kubernetes.io/component": "engine"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert _rules(policy) == [
        (2005, [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "velocity",
                                                 "app.kubernetes.io/instance": "alpha"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "velocity-system"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "velocity-operator"}}}]),
        (2005, [{"podSelector": {}}]),  # clients: every pod of the namespace
        (9105, [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]),
    ]
    assert all(p["protocol"] == "TCP" for rule in policy["spec"]["ingress"] for p in rule["ports"])


def test_network_policy_selected_peers(owner: Owner) -> None:
    spec = make_spec(networkPolicy={
        "enabled": True,
        "clients": [{"namespaceSelector": {"matchLabels": {"team": "shop"}},
                     "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}],
        "operator": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.9/32"]}}],
        "prometheus": [],
    })
    rules = _rules(network_policy.network_policy(owner, spec.network_policy))
    assert rules[0][1][1] == {"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.9/32"]}}
    assert rules[1] == (2005, [{"namespaceSelector": {"matchLabels": {"team": "shop"}},
                                "podSelector": {"matchExpressions": [
                                    {"key": "app", "operator": "In", "values": ["web"]}]}}])
    # An empty list admits nobody: no rule at all (a rule without `from` would admit everyone).
    assert len(rules) == 2 and all(peers for _, peers in rules)


def test_empty_clients_admit_only_the_cluster_and_the_operator(owner: Owner) -> None:
    spec = make_spec(networkPolicy={"enabled": True, "clients": [], "prometheus": []})
    rules = _rules(network_policy.network_policy(owner, spec.network_policy))
    assert len(rules) == 1 and rules[0][0] == 2005


def test_network_policy_is_off_by_default() -> None:
    assert make_spec().network_policy == NetworkPolicySpec(enabled=False)
    with pytest.raises(ValidationError):
        make_spec(networkPolicy={"enabled": True, "clients": [{"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "Near"}]}}]})


def test_network_policy_applied_and_removed(owner: Owner) -> None:
    kube = FakeKube()
    actions: list[Action] = []
    asyncio.run(reconcile_network_policy(cast(Kube, kube), owner, make_spec(networkPolicy={"enabled": True}),
                                         actions))
    assert ("NetworkPolicy", "prod", "alpha") in kube.objects
    asyncio.run(reconcile_network_policy(cast(Kube, kube), owner, make_spec(), actions))
    assert ("NetworkPolicy", "prod", "alpha") not in kube.objects
    assert [a.reason for a in actions] == ["NetworkPolicyDeleted"]
    # A policy named like the cluster that the operator does not own is left alone.
    foreign = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "alpha", "namespace": "prod"}, "spec": {}}
    kube.objects[("NetworkPolicy", "prod", "alpha")] = foreign
    asyncio.run(reconcile_network_policy(cast(Kube, kube), owner, make_spec(), actions))
    assert kube.objects[("NetworkPolicy", "prod", "alpha")] is foreign
