"""The `kube_api` pytest fixture: tier 1 of the Kubernetes harness.

To use it from another test directory, re-export it in that directory's conftest.py:

    from tests.kube.plugin import kube_api  # noqa: F401  (the fixture)

then name `kube_api` as a test argument; it is a `tests.kube.kube_api.KubeAPI`
(`.kubeconfig` for kopf / kubernetes_asyncio / kubectl, `.request()`, `.kubectl()`,
`.ssl_context()`).

The fixture is session-scoped: one etcd + kube-apiserver + kube-controller-manager per
test session, always torn down, even when tests fail or are interrupted. If the tier
cannot start (binaries missing, a component crashes) every test that asks for it
fails with the reason; nothing is skipped. Logs stay in pytest's basetemp
(`kube-api*/<component>.log`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .apiserver_tier import ApiServerTier
from .errors import KubeTierError
from .kube_api import KubeAPI

__all__ = ["kube_api"]


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """A running API server with RBAC on; yields how to reach it as cluster-admin."""
    workdir = tmp_path_factory.mktemp("kube-api")
    try:
        tier = ApiServerTier.start(workdir)
    except KubeTierError as exc:
        pytest.fail(f"Kubernetes API server tier did not start: {exc}", pytrace=False)
    try:
        yield tier.api
    finally:
        tier.stop()
