"""The operator's switchover request against real engine processes (no cluster): TLS with
the cluster's CA and admin token (NAME-admin, issue 11), plaintext, and every failure turned into a SwitchoverError
with its cause. A lone engine has no replica, so each request ends at "no streaming
target" once the operator has reached and authenticated to it; the successful hand-over
is proven on the local cluster (e2e/test_operator_lifecycle.py)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from velocity_operator.builders.meta import Owner
from velocity_operator.controllers.switchover import ADDRESSES_ENV, SwitchoverError, request_switchover
from velocity_operator.kube import Kube

from tests.support.engine_proc import EngineProcess, free_port

from .conftest import make_spec

POD_DNS = "alpha-1.alpha-headless.prod.svc"


class _Secrets:
    """Just what request_switchover reads from the API: Secrets."""

    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert (api_version, kind, namespace) == ("v1", "Secret", "prod")
        data = self.secrets.get(name)
        return None if data is None else {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def _primary_pod() -> dict[str, Any]:
    return {"metadata": {"name": "alpha-1"}, "status": {}}


def _request(owner: Owner, kube: _Secrets, tls: bool, timeout: float = 10.0) -> SwitchoverError:
    spec = make_spec(replicas=2, tls={"enabled": tls})
    with pytest.raises(SwitchoverError) as caught:
        asyncio.run(request_switchover(cast(Kube, kube), owner, spec, _primary_pod(), ("alpha-0",), timeout=timeout))
    return caught.value


@pytest.fixture
def tls_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    # The pod's DNS name in the certificate, as the operator's server certificate has it.
    with EngineProcess(tmp_path, extra_args=["--tls-san", POD_DNS]) as eng:
        yield eng


def test_reaches_the_tls_primary_with_the_cluster_ca_and_token(
        tls_engine: EngineProcess, owner: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADDRESSES_ENV, f'{{"prod/alpha-1": "127.0.0.1:{tls_engine.port}"}}')
    kube = _Secrets({"alpha-auth": {"token": tls_engine.token.encode()},
                     "alpha-admin": {"token": tls_engine.admin_token.encode()},
                     "alpha-ca": {"ca.crt": tls_engine.ca.read_bytes()}})
    error = _request(owner, kube, tls=True)
    # Reached and authenticated: the engine's INFO says no replica streams from it.
    assert "none of alpha-0 is streaming from the primary" in str(error), error
    assert (error.cluster, error.primary, error.target) == ("alpha", "alpha-1", None)


def test_wrong_token_and_missing_secrets_are_reported(
        tls_engine: EngineProcess, owner: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADDRESSES_ENV, f'{{"prod/alpha-1": "127.0.0.1:{tls_engine.port}"}}')
    ca = tls_engine.ca.read_bytes()
    error = _request(owner, _Secrets({"alpha-admin": {"token": b"not-the-token"}, "alpha-ca": {"ca.crt": ca}}),
                     tls=True)
    assert "AuthFailedError" in str(error), error
    # The client token is not enough, and not used: without NAME-admin nothing is sent.
    error = _request(owner, _Secrets({"alpha-auth": {"token": tls_engine.token.encode()}, "alpha-ca": {"ca.crt": ca}}),
                     tls=True)
    assert "the admin token not found" in str(error) and "alpha-admin" in str(error), error


def test_plaintext_cluster_needs_no_secrets(tmp_path: Path, owner: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    with EngineProcess(tmp_path, insecure=True) as eng:
        monkeypatch.setenv(ADDRESSES_ENV, f'{{"prod/alpha-1": "127.0.0.1:{eng.port}"}}')
        error = _request(owner, _Secrets({}), tls=False)
    assert "none of alpha-0 is streaming from the primary" in str(error), error


def test_unreachable_primary_fails_fast(owner: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADDRESSES_ENV, f'{{"prod/alpha-1": "127.0.0.1:{free_port()}"}}')
    error = _request(owner, _Secrets({}), tls=False, timeout=10.0)
    # The SDK names the refused connection (ConnectionRefusedError, or its own ConnectionError).
    assert "ConnectionRefusedError" in str(error) or "cannot connect" in str(error), error
