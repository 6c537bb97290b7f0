"""Fixtures for the Helm chart tier (charts/velocity-operator, `make test-helm`).

- `helm`: the helm binary of hack/helm/build.sh (built from the Go module proxy on first
  use, cached in ~/.cache/velocity-helm, never rebuilt);
- `render(*args)`: `helm template` of the chart, parsed;
- the API-server tier's fixtures (tests/operator/conftest.py): `kube_api`, `kubectl`,
  `crds`, `ns`, for installing the chart on a real kube-apiserver.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.conftest import crds, kube_api, kubectl, ns

__all__ = ["CHART", "REPO", "crds", "helm", "kube_api", "kubectl", "kubectl_bin", "ns", "render"]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "velocity-operator"


@pytest.fixture(scope="session")
def helm() -> str:
    done = subprocess.run(["bash", str(REPO / "hack/helm/build.sh")], capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        pytest.fail(f"helm could not be built (hack/helm/build.sh):\n{done.stderr[-3000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    """kubectl of the Kubernetes harness (its kustomize builds manifests/)."""
    done = subprocess.run(["bash", str(REPO / "hack/k8s-build.sh"), "--check"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"Kubernetes binaries missing: {done.stderr.strip()} (make k8s-bins)", pytrace=False)
    return str(Path(done.stdout.strip().splitlines()[-1]) / "kubectl")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def render(helm: str) -> Callable[..., list[dict[str, Any]]]:
    """`helm template RELEASE charts/velocity-operator ARGS...` as a list of objects."""
    def template(*args: str, release: str = "velocity-operator", namespace: str = "velocity-system") -> list[
            dict[str, Any]]:
        done = run(helm, "template", release, str(CHART), "--namespace", namespace, *args)
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return template


_ = (crds, kube_api, kubectl, ns)  # re-exported fixtures
