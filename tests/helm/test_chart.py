"""The Helm chart (charts/velocity-operator): generated from manifests/, rendering them,
every value reaching its object, and installed on a real kube-apiserver.

- `helm template` with the default values renders the objects of `kubectl kustomize
  manifests/` (and manifests/monitoring/ with the monitoring toggles on), compared as
  parsed objects: only Helm's own labels and the operator flags that spell out defaults
  may differ (flags are compared by what velocity_operator.main.parse_args makes of them);
- tests/helm/values-all.yaml (every option set) renders consistent objects: selectors
  match labels, the Lease the Role names is the one the operator is told to use, the
  bindings name the ServiceAccount the pods run as;
- values the operator would refuse fail at render time;
- `helm install` on the tier-1 API server (etcd + kube-apiserver), then the operator run
  with exactly the installed Deployment's arguments and the chart's ServiceAccount: it
  takes the Lease and reconciles a VelocityCluster; `helm upgrade`, `helm uninstall`
  (the CRDs stay).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from velocity_operator.main import parse_args

from tests.kube.kube_api import KubeAPI
from tests.operator.conftest import Kubectl, OperatorProcess, cluster, wait_for

from .conftest import CHART, REPO, run

Render = Callable[..., list[dict[str, Any]]]
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
               "helm.sh/chart"}
MONITORING_ON = [arg for toggle in ("serviceMonitor", "podMonitor", "prometheusRule", "grafanaDashboards")
                 for arg in ("--set", f"monitoring.{toggle}.enabled=true")]
VALUES_ALL = Path(__file__).with_name("values-all.yaml")


def _by_kind(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = obj
    return out


def _strip(obj: Any, drop: set[str]) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v, drop) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [_strip(v, drop) for v in obj]
    return obj


def _options(args: list[str], monkeypatch: pytest.MonkeyPatch, namespace: str) -> dict[str, Any]:
    """What the operator makes of its arguments (the random part of the identity left out)."""
    monkeypatch.setenv("POD_NAMESPACE", namespace)
    monkeypatch.setenv("POD_NAME", "pod")
    parsed = vars(parse_args(args))
    election = parsed.pop("leader_election")
    if election is not None:
        parsed["leader_election"] = (election.namespace, election.name, election.lease_duration_s,
                                     election.renew_deadline_s, election.retry_period_s)
    parsed.pop("leader_elect_identity")
    return parsed


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _deployment(objects)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_chart_is_what_the_generator_writes() -> None:
    done = run(sys.executable, str(REPO / "tools/chart.py"), "--check", check=False)
    assert done.returncode == 0, done.stderr


def test_lint_strict(helm: str) -> None:
    for extra in ([], ["--values", str(VALUES_ALL)]):
        done = run(helm, "lint", "--strict", str(CHART), *extra, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_default_values_render_the_kustomize_manifests(render: Render, kubectl_bin: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    chart = _by_kind(render(*MONITORING_ON))
    kustomized = [d for path in ("manifests", "manifests/monitoring")
                  for d in yaml.safe_load_all(run(kubectl_bin, "kustomize", str(REPO / path)).stdout) if d]
    # The Namespace is Helm's (--create-namespace); the CRDs are the chart's crds/ (below).
    expected = _by_kind([d for d in kustomized if d["kind"] not in ("Namespace", "CustomResourceDefinition")])
    assert sorted(chart) == sorted(expected)
    for key, want in expected.items():
        got = _strip(chart[key], HELM_LABELS)
        if "app.kubernetes.io/name" not in (want["metadata"].get("labels") or {}):
            got["metadata"]["labels"].pop("app.kubernetes.io/name")  # the chart labels all it installs
        if key[0] == "Deployment":
            got_args = got["spec"]["template"]["spec"]["containers"][0].pop("args")
            want_args = want["spec"]["template"]["spec"]["containers"][0].pop("args")
            assert _options(got_args, monkeypatch, "velocity-system") == \
                _options(want_args, monkeypatch, "velocity-system"), (got_args, want_args)
        assert got == want, key
    # crds/ of the chart: the generated CRDs, as `kubectl apply -f crds/` installs them.
    crds = [d for d in render("--include-crds") if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == ["velocitybackups.vdb.io", "velocityclusters.vdb.io"]
    for crd in crds:
        plural = crd["spec"]["names"]["plural"]
        assert crd == yaml.safe_load((REPO / "crds" / f"vdb.io_{plural}.yaml").read_text())


def test_every_value_reaches_its_object(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render("--values", str(VALUES_ALL), release="vdb", namespace="ops")
    by_kind = _by_kind(objects)
    name = "vdb-velocity-operator"
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "ops", obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "vdb"
    deployment = by_kind[("Deployment", name)]
    pod = deployment["spec"]["template"]
    container = _container(objects)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["team"] == "databases"
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                                              "prometheus.io/path": "/metrics", "example.com/owner": "databases"}
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "podAntiAffinity" in spec["affinity"]
    assert container["image"] == "registry.example/velocity/operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["VELOCITY_ENGINE_IMAGE"]["value"] == "registry.example/velocity/engine:1.2.3"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    options = _options(container["args"], monkeypatch, "ops")
    assert options["namespace"] == ["prod", "staging"] and options["log_level"] == "DEBUG"
    assert options["leader_election"] == ("ops", name, 8, 5, 1)

    # RBAC: the Lease the Role names is the operator's; the bindings name the pods' account.
    account = spec["serviceAccountName"]
    assert by_kind[("ServiceAccount", account)]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/velocity-operator"}
    role = by_kind[("Role", f"{name}-leader-election")]
    assert [r["resourceNames"] for r in role["rules"] if "resourceNames" in r] == [[name]]
    for kind, binding in (("ClusterRoleBinding", name), ("RoleBinding", f"{name}-leader-election")):
        obj = by_kind[(kind, binding)]
        assert obj["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ops"}]
        assert (obj["roleRef"]["kind"], obj["roleRef"]["name"]) in by_kind

    # Services select the operator pods; the ServiceMonitor selects the metrics Service.
    for svc in (by_kind[("Service", name)], by_kind[("Service", f"{name}-metrics")]):
        assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    monitor = by_kind[("ServiceMonitor", name)]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        by_kind[("Service", f"{name}-metrics")]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    rules = yaml.safe_load((REPO / "manifests/monitoring/prometheusrule.yaml").read_text())
    assert by_kind[("PrometheusRule", "velocity-alerts")]["spec"] == rules["spec"]
    dashboards = yaml.safe_load((REPO / "manifests/monitoring/grafana-dashboards.yaml").read_text())
    assert by_kind[("ConfigMap", "velocity-dashboards")]["data"] == dashboards["data"]
    assert by_kind[("ConfigMap", "velocity-dashboards")]["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_two_releases_in_one_namespace_do_not_collide(render: Render) -> None:
    a, b = _by_kind(render(release="a")), _by_kind(render(release="b"))
    assert not set(a) & set(b)
    args = [_container(list(r.values()))["args"] for r in (a, b)]
    assert "--leader-elect-resource-name=a-velocity-operator" in args[0]
    assert "--leader-elect-resource-name=b-velocity-operator" in args[1]


def test_without_leader_election_one_replica_recreated(render: Render) -> None:
    objects = render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    assert _deployment(objects)["spec"]["strategy"] == {"type": "Recreate"}
    assert not [a for a in _container(objects)["args"] if a.startswith("--leader-elect")]


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "leaderElection.enabled=false"], "replicaCount > 1 needs leaderElection.enabled"),
    (["--set", "leaderElection.renewDeadlineSeconds=14"], "leaseDurationSeconds must be greater"),
    (["--set", "leaderElection.leaseDurationSeconds=30", "--set", "leaderElection.retryPeriodSeconds=9"],
     "greater than 1.2 x retryPeriodSeconds"),
    (["--set", "logLevel=TRACE"], "logLevel"),
    (["--set", "replicas=2"], "replicas"),  # a typo of replicaCount: unknown keys are refused
    (["--set", "replicaCount=0"], "replicaCount"),
])
def test_unsafe_values_are_refused(helm: str, values: list[str], message: str) -> None:
    done = run(helm, "template", "x", str(CHART), *values, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


# ---- on the real API server --------------------------------------------------------------

def _token_kubeconfig(kubectl: Kubectl, kube_api: KubeAPI, namespace: str, account: str, path: Path) -> KubeAPI:
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": kube_api.server,
                                               "certificate-authority": str(kube_api.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "sa"}}],
        "current-context": "t",
    }))
    return KubeAPI(kubeconfig=path, server=kube_api.server, ca_file=kube_api.ca_file,
                   cert_file=kube_api.cert_file, key_file=kube_api.key_file, bin_dir=kube_api.bin_dir)


@pytest.fixture
def release(helm: str, kube_api: KubeAPI, crds: None, ns: str) -> Iterator[tuple[str, list[str]]]:
    """A release name and the helm arguments that reach the tier's API server; uninstalled afterwards."""
    name = f"vo-{ns}"
    base = ["--kubeconfig", str(kube_api.kubeconfig), "--namespace", ns]
    try:
        yield name, base
    finally:
        subprocess.run([helm, "uninstall", name, *base], capture_output=True, timeout=120, check=False)


def test_install_run_upgrade_uninstall(helm: str, kubectl: Kubectl, kube_api: KubeAPI, ns: str,
                                       release: tuple[str, list[str]], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    name, base = release
    full = f"{name}-velocity-operator"
    done = run(helm, "install", name, str(CHART), *base, "--set", f"watchNamespaces={{{ns}}}")
    assert "STATUS: deployed" in done.stdout, done.stdout
    deployment = kubectl.get("deployment", full, ns)
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    for kind, obj, where in (("serviceaccount", full, ns), ("service", full, ns), ("clusterrole", full, None),
                             ("clusterrolebinding", full, None), ("poddisruptionbudget", full, ns),
                             ("role", f"{full}-leader-election", ns),
                             ("rolebinding", f"{full}-leader-election", ns)):
        assert kubectl.get(kind, obj, where) is not None, (kind, obj)
    who = f"--as=system:serviceaccount:{ns}:{full}"
    assert kubectl.run("auth", "can-i", "update", f"leases.coordination.k8s.io/{full}", "-n", ns, who,
                       check=False).stdout.strip() == "yes"

    # The operator as the installed Deployment runs it: its arguments, its account, the
    # downward-API environment; only the ports are the test's.
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"] if a not in ("--metrics-port", "8080", "--liveness-port", "8081")]
    monkeypatch.setenv("POD_NAMESPACE", ns)
    monkeypatch.setenv("POD_NAME", f"{full}-5d8c7b9f6-abcde")
    api = _token_kubeconfig(kubectl, kube_api, ns, full, tmp_path / "operator.kubeconfig")
    proc = OperatorProcess(api, tmp_path, extra_args=args)
    try:
        proc.start()
        lease = wait_for("the chart's Lease", lambda: ((kubectl.get("lease", full, ns) or {}).get("spec") or {}))
        assert str(lease["holderIdentity"]).startswith(f"{full}-5d8c7b9f6-abcde_")
        kubectl.apply(cluster("hc", ns))
        wait_for("StatefulSet hc", lambda: kubectl.get("statefulset", "hc", ns))

        def samples() -> dict[str, float]:
            return {s.name: s.value for f in text_string_to_metric_families(proc.metrics()) for s in f.samples
                    if not s.labels or s.labels.get("result") == "success"}

        # The reconcile is counted when its handler returns, after it created the StatefulSet.
        def reconciled() -> dict[str, float] | None:
            m = samples()
            return m if m.get("velocity_operator_reconciles_total", 0) >= 1 else None

        seen = wait_for("a successful reconcile in the operator's metrics", reconciled)
        assert seen["velocity_operator_leader"] == 1
        denied = [line for line in proc.log.read_text().splitlines() if "forbidden" in line.lower()]
        assert not denied, "\n".join(denied[:5])
    finally:
        proc.stop()

    done = run(helm, "upgrade", name, str(CHART), *base, "--reuse-values", "--set", "replicaCount=3")
    assert "STATUS: deployed" in done.stdout
    upgraded = kubectl.get("deployment", full, ns)
    assert upgraded is not None and upgraded["spec"]["replicas"] == 3

    run(helm, "uninstall", name, *base)
    assert kubectl.get("clusterrole", full) is None
    assert kubectl.get("deployment", full, ns) is None
    # crds/ of a chart are never deleted by Helm: VelocityClusters outlive the operator.
    assert kubectl.get("crd", "velocityclusters.vdb.io") is not None
    assert kubectl.get("vc", "hc", ns) is not None
    # No operator is left to remove its finalizer (docs/operator/install.md, Uninstalling).
    kubectl.run("patch", "vc", "hc", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
