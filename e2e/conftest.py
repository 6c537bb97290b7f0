"""Fixtures of the e2e suite: a kubeconfig in, nothing else assumed about the cluster.

    pytest e2e --kubeconfig PATH       (or KUBECONFIG=PATH pytest e2e)

Each test module gets its own namespace, deleted afterwards; when a test fails the
namespace's pods, events and logs are printed. A cluster that cannot be reached
fails the run with the reason; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator

import pytest

from .kube import Kubectl, KubectlError, wait_for


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kubeconfig", default=None,
                     help="kubeconfig of the cluster under test (default: $KUBECONFIG)")
    parser.addoption("--isolated-dns", action="store_true", default=False,
                     help="the cluster's DNS must not resolve names outside the cluster "
                          "(true of the local cluster; kind's CoreDNS forwards)")
    parser.addoption("--node-control", default=None, metavar="CMD",
                     help="command that simulates node loss: `CMD stop NODE` / `CMD start NODE` "
                          "(make e2e passes the local cluster's hack/cluster/node.sh)")
    parser.addoption("--container-signal", default=None, metavar="CMD",
                     help="command that signals a container's main process from outside the container: "
                          "`CMD NODE CONTAINER_ID SIGNAL` (SIGSTOP, SIGCONT, SIGKILL; make e2e passes the "
                          "local cluster's hack/cluster/container.sh)")
    parser.addoption("--long-e2e", action="store_true", default=False,
                     help="also run the scenarios marked long_e2e (several minutes each; not in make test)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_e2e: an e2e scenario of several minutes, run only with --long-e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long-e2e"):
        return
    skip = pytest.mark.skip(reason="a long e2e scenario: run it with --long-e2e")
    for item in items:
        if item.get_closest_marker("long_e2e"):
            item.add_marker(skip)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def kubectl(request: pytest.FixtureRequest) -> Kubectl:
    path = request.config.getoption("--kubeconfig") or os.environ.get("KUBECONFIG")
    if not path:
        pytest.fail("no cluster: pass --kubeconfig PATH or set KUBECONFIG "
                    "(make e2e brings up the local cluster and passes it)", pytrace=False)
    if not os.path.isfile(path):
        pytest.fail(f"kubeconfig {path} does not exist", pytrace=False)
    try:
        k = Kubectl(path)
        k.run("version", timeout=30)
    except (KubectlError, OSError) as exc:
        pytest.fail(f"cannot reach the cluster of {path}: {exc}", pytrace=False)
    return k


@pytest.fixture(scope="session")
def isolated_dns(request: pytest.FixtureRequest) -> bool:
    """Whether --isolated-dns was given (make e2e gives it for the local cluster)."""
    return bool(request.config.getoption("--isolated-dns"))


@pytest.fixture(scope="session")
def node_control(request: pytest.FixtureRequest) -> str | None:
    """The --node-control command, or None (node-loss tests are then skipped, with that reason)."""
    value = request.config.getoption("--node-control")
    return str(value) if value else None


@pytest.fixture(scope="session")
def container_signal(request: pytest.FixtureRequest) -> str | None:
    """The --container-signal command, or None (tests that freeze or kill an engine from
    outside its container are then skipped, with that reason)."""
    value = request.config.getoption("--container-signal")
    return str(value) if value else None


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[Kubectl]:
    """A fresh namespace; yields a Kubectl bound to it."""
    name = f"velocity-e2e-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    ns = kubectl.in_namespace(name)
    wait_for(lambda: any(sa["metadata"]["name"] == "default"
                         for sa in ns.json("get", "serviceaccounts")["items"]),
             timeout=60, what=f"the default service account of {name}")
    yield ns
    failed = any(item.stash.get(_FAILED, False) for item in request.session.items
                 if getattr(item, "module", None) is request.module)
    if failed:
        print(f"\n===== state of namespace {name} =====\n{ns.describe_failure()}")
    kubectl.run("delete", "namespace", name, "--wait=true", "--timeout=180s", check=False,
                timeout=200)
