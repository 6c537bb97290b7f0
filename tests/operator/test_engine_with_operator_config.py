"""A real velocity-engine started the way the operator's pods start it: the operator's
config file, certificate and token work with the engine over real TLS."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders import secrets

from .podsim import ClusterMaterial, SimulatedPod


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[SimulatedPod]:
    spec = VelocityClusterSpec.model_validate({"config": {"maxConnections": 77, "logLevel": "INFO"}})
    sim = SimulatedPod(tmp_path / "alpha-0", ClusterMaterial(), spec)
    try:
        sim.start()
        yield sim
    finally:
        sim.stop()


def test_engine_serves_tls_with_the_operator_material(pod: SimulatedPod) -> None:
    done = pod.ctl("set", "k", "v")
    assert done.returncode == 0, done.stderr
    done = pod.ctl("get", "k")
    assert done.returncode == 0 and done.stdout.strip() == "v", done.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{pod.metrics_port}/healthz", timeout=2) as r:
        assert r.status == 200


def test_wrong_token_is_refused(pod: SimulatedPod, tmp_path: Path) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text(secrets.new_token())
    done = pod.ctl("get", "k", token_file=bad)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
