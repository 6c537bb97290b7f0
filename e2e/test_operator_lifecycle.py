"""One cluster's life under the operator, with clients running: scale 1 -> 3 with data,
an image update, the move from the Python data plane to the native one, a certificate
rotation, an operator killed in the middle of a rolling update, a live config change that
restarts nothing, scale 3 -> 1.

The cluster starts on the Python data plane (spec.config.dataPlane: python) and rolls to the
native one halfway, the path a cluster created before issue 13 takes: every test after that
runs native pods.

The tests run in order on one VelocityCluster (`life`) to keep the suite short. During
each rolling update an SDK write loop (a pod, through the client Service, one long-lived
pool) keeps writing and finally reads every acknowledged key back; a thread polls the
pods and records the most that were not ready at once. Numbers are printed (`-s`) and
recorded in docs/benchmarks.md.

The image update needs a second tag of the engine image in the cluster: on the local
cluster it is made with `ctr images tag` in its containerd (hack/cluster/common.sh);
elsewhere set VELOCITY_ENGINE_IMAGE_B to an image the nodes have.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .kube import Kubectl, KubectlError, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import OperatorProcess, running_operator
from .placement import HOSTNAME_LABEL, pinned_node
from .sdk_pods import LoopResult, WriteLoop, client_outcome, pod_endpoint, run_client, service_endpoint

NAME = "life"
ENGINE_PODS = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=engine"
KEYS = 1000
TLS_HASH = "vdb.io/tls-hash"  # pod template annotation: a new certificate rolls the pods
CONFIG_HASH = "vdb.io/config-hash"  # pod template annotation: restart-only settings
CLUSTER_DIR = Path(os.environ.get("VELOCITY_CLUSTER_DIR", "/var/lib/velocity-cluster"))
CONTAINERD_SOCK = CLUSTER_DIR / "containerd" / "containerd.sock"


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


def _qualified(image: str) -> str:
    """containerd's name for a short Docker-style reference."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    return image if "." in first or ":" in first or first == "localhost" else f"docker.io/{image}"


@pytest.fixture(scope="module")
def image_b() -> Iterator[str]:
    """A second tag of the engine image (same content), present on the cluster's node."""
    given = os.environ.get("VELOCITY_ENGINE_IMAGE_B")
    if given:
        yield given
        return
    base = ENGINE_IMAGE.rsplit(":", 1)[0]
    tag = f"{base}:e2e-roll"
    if shutil.which("ctr") is None or not CONTAINERD_SOCK.exists():
        pytest.fail(f"no second engine image: set VELOCITY_ENGINE_IMAGE_B (no local cluster containerd at "
                    f"{CONTAINERD_SOCK} to tag {ENGINE_IMAGE} as {tag})", pytrace=False)
    ctr = ["ctr", "--address", str(CONTAINERD_SOCK), "-n", "k8s.io", "images"]
    subprocess.run([*ctr, "tag", "--force", _qualified(ENGINE_IMAGE), _qualified(tag)], check=True,
                   capture_output=True, timeout=60)
    try:
        yield tag
    finally:
        subprocess.run([*ctr, "rm", _qualified(tag)], check=False, capture_output=True, timeout=60)


def _ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _image(pod: dict[str, Any]) -> str:
    return str(next(c["image"] for c in pod["spec"]["containers"] if c["name"] == "engine"))


def _pods(ns: Kubectl) -> list[dict[str, Any]]:
    return list(ns.json("get", "pods", "-l", ENGINE_PODS)["items"])


def _status(ns: Kubectl) -> tuple[dict[str, Any], dict[str, Any]]:
    vc = ns.json("get", "vc", NAME)
    return vc, vc.get("status") or {}


def _converged(ns: Kubectl, replicas: int, image: str | None = None) -> bool:
    """Ready, status current for the latest generation, every pod ready (on `image`)."""
    vc, status = _status(ns)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
    if not ready or status.get("observedGeneration") != vc["metadata"]["generation"]:
        return False
    pods = _pods(ns)
    return len(pods) == replicas and all(_ready(p) and (image is None or _image(p) == image) for p in pods)


def _wait_converged(ns: Kubectl, replicas: int, image: str | None = None, timeout: float = 300) -> None:
    wait_for(lambda: _converged(ns, replicas, image), timeout=timeout, interval=2,
             what=f"{NAME}: Ready with {replicas} ready pods" + (f" on {image}" if image else ""))


class NotReadyWatch:
    """A thread polling the cluster's pods: the most that were not ready (or missing) at once."""

    def __init__(self, ns: Kubectl, replicas: int) -> None:
        self.ns, self.replicas = ns, replicas
        self.worst = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> NotReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready = sum(_ready(p) for p in _pods(self.ns))
            except (KubectlError, subprocess.TimeoutExpired, ValueError):
                continue
            self.worst = max(self.worst, self.replicas - ready)
            self.samples += 1
            self._stop.wait(0.5)


def _report(what: str, result: LoopResult, watch: NotReadyWatch, seconds: float) -> None:
    print(f"\n{what}: {seconds:.0f}s; writes acknowledged {result.acked}, failed after retries {result.failed}, "
          f"errors seen (then retried) {result.errors} {result.error_kinds}, longest write gap "
          f"{result.longest_gap_s:.2f}s, lost {result.lost_count}; at most {watch.worst} pod(s) not ready "
          f"({watch.samples} samples)")


def _served_serial(ns: Kubectl, pod: str, ca_pem: bytes) -> int:
    """The serial of the certificate `pod` serves, by a TLS handshake through a port-forward
    (verified with the cluster's CA and the SAN localhost)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    with ns.port_forward(f"pod/{pod}", 2005) as port:
        def handshake() -> bytes | None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.getpeercert(binary_form=True)
        der = wait_for(handshake, timeout=30, what=f"a TLS handshake with {pod}")
    return int(x509.load_der_x509_certificate(der).serial_number)


def _template_tls_hash(ns: Kubectl) -> str:
    sts = ns.json("get", "statefulset", NAME)
    return str(sts["spec"]["template"]["metadata"]["annotations"][TLS_HASH])


def _secret_data(ns: Kubectl, name: str, key: str) -> bytes:
    return base64.b64decode(ns.json("get", "secret", name)["data"][key])


def test_scale_1_to_3_new_replicas_catch_up(namespace: Kubectl, operator: OperatorProcess) -> None:
    namespace.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": NAME},
                     "spec": {"replicas": 1, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                              "nodeSelector": {HOSTNAME_LABEL: pinned_node(namespace)},
                              "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}},
                              "config": {"dataPlane": "python"}}})
    _wait_converged(namespace, 1)
    assert "OK" in run_client(namespace, NAME, "fill", service_endpoint(namespace, NAME), "fill", "seed", str(KEYS))
    start = time.monotonic()
    namespace.run("scale", f"vc/{NAME}", "--replicas=3")
    _wait_converged(namespace, 3)
    ready_s = time.monotonic() - start
    assert _status(namespace)[1]["currentPrimary"] == f"{NAME}-0"  # scaling up moves no primary
    attempts = iter(range(1000))

    def caught_up(ordinal: int) -> bool:
        phase, logs = client_outcome(namespace, NAME, f"stale-{ordinal}-{next(attempts)}",
                                     pod_endpoint(namespace, NAME, ordinal), "count-stale", "seed", str(KEYS))
        return phase == "Succeeded" and f"MATCH {KEYS}" in logs

    for ordinal in (1, 2):  # each new replica serves the keys from its own copy
        wait_for(functools.partial(caught_up, ordinal), timeout=180, interval=2,
                 what=f"{NAME}-{ordinal} to hold all {KEYS} keys")
    print(f"\nscale 1 -> 3 with {KEYS} keys: Ready after {ready_s:.0f}s, both new replicas serving every key "
          f"(stale reads from each pod) after {time.monotonic() - start:.0f}s")


def test_image_update_rolls_one_pod_at_a_time(namespace: Kubectl, operator: OperatorProcess, image_b: str) -> None:
    loop = WriteLoop(namespace, NAME, "roll-writer", service_endpoint(namespace, NAME))
    loop.wait_acked(50)
    start = time.monotonic()
    with NotReadyWatch(namespace, 3) as watch:
        namespace.run("patch", "vc", NAME, "--type=merge", "-p", f'{{"spec": {{"image": "{image_b}"}}}}')
        _wait_converged(namespace, 3, image_b)
        elapsed = time.monotonic() - start
        loop.wait_acked(loop.acked() + 50)  # still writing after the roll
    result = loop.stop()
    _report(f"image update {ENGINE_IMAGE} -> {image_b} (3 pods)", result, watch, elapsed)
    assert watch.samples > 10 and watch.worst == 1, f"{watch.worst} pods were not ready at once"
    assert result.failed == 0, result
    assert result.lost_count == 0, f"acknowledged writes lost: {result.lost}"
    assert _status(namespace)[1]["image"] == image_b


def _config_hashes(ns: Kubectl) -> tuple[str, set[str]]:
    """The config hash of the StatefulSet's template and the set of the pods' own."""
    template = ns.json("get", "statefulset", NAME)["spec"]["template"]["metadata"]["annotations"]
    pods = {p["metadata"].get("annotations", {}).get(CONFIG_HASH, "") for p in _pods(ns)}
    return str(template[CONFIG_HASH]), pods


def test_python_to_native_data_plane_rolls_without_loss(namespace: Kubectl, operator: OperatorProcess) -> None:
    """spec.config.dataPlane python -> native: a rolling restart, replicas first, the primary
    handed over to a native replica that followed it in stream version 1. Every pod then
    serves from the native core, on the directory the Python engine wrote."""
    config_file = namespace.json("get", "configmap", f"{NAME}-config")["data"]["velocity.toml"]
    assert 'data_plane = "python"' in config_file, config_file
    before, _ = _config_hashes(namespace)
    loop = WriteLoop(namespace, NAME, "plane-writer", service_endpoint(namespace, NAME))
    loop.wait_acked(50)
    start = time.monotonic()
    with NotReadyWatch(namespace, 3) as watch:
        namespace.run("patch", "vc", NAME, "--type=merge", "-p", '{"spec": {"config": {"dataPlane": "native"}}}')
        wait_for(lambda: _config_hashes(namespace)[0] != before, timeout=60,
                 what="the StatefulSet template to carry the new config hash")
        after, _ = _config_hashes(namespace)
        wait_for(lambda: _config_hashes(namespace)[1] == {after} and _converged(namespace, 3), timeout=300,
                 interval=2, what=f"{NAME}: every pod restarted with dataPlane native and ready")
        elapsed = time.monotonic() - start
        loop.wait_acked(loop.acked() + 50)  # still writing after the roll
    result = loop.stop()
    _report("data plane python -> native (3 pods)", result, watch, elapsed)
    for ordinal in range(3):
        out = run_client(namespace, NAME, f"plane-{ordinal}", pod_endpoint(namespace, NAME, ordinal),
                         "wait-setting", "server.data_plane", "native")
        assert "SETTING server.data_plane native" in out, out
    assert watch.samples > 10 and watch.worst == 1, f"{watch.worst} pods were not ready at once"
    assert result.failed == 0, result
    assert result.lost_count == 0, f"acknowledged writes lost: {result.lost}"
    # The keys written on the Python plane before the roll are served by the native one.
    assert f"MATCH {KEYS}" in run_client(namespace, NAME, "seed-native", service_endpoint(namespace, NAME),
                                         "count-stale", "seed", str(KEYS))
    with pytest.raises(KubectlError, match="can only change from python to native"):
        namespace.run("patch", "vc", NAME, "--type=merge", "-p", '{"spec": {"config": {"dataPlane": "python"}}}')


def test_certificate_rotation_keeps_clients(namespace: Kubectl, operator: OperatorProcess) -> None:
    ca = _secret_data(namespace, f"{NAME}-ca", "ca.crt")
    old_serial = x509.load_pem_x509_certificate(_secret_data(namespace, f"{NAME}-tls", "tls.crt")).serial_number
    assert _served_serial(namespace, f"{NAME}-0", ca) == old_serial
    old_hash = _template_tls_hash(namespace)
    loop = WriteLoop(namespace, NAME, "rotation-writer", service_endpoint(namespace, NAME))
    loop.wait_acked(50)
    start = time.monotonic()
    with NotReadyWatch(namespace, 3) as watch:
        namespace.run("annotate", "vc", NAME, f"vdb.io/rotate-certificates=e2e-{int(time.time())}", "--overwrite")
        new_serial = wait_for(
            lambda: (s := x509.load_pem_x509_certificate(
                _secret_data(namespace, f"{NAME}-tls", "tls.crt")).serial_number) != old_serial and s,
            timeout=60, what=f"a new certificate in {NAME}-tls")
        # Every pod restarted on the new certificate (the template's tls-hash changed).
        wait_for(lambda: _template_tls_hash(namespace) != old_hash, timeout=60, what="a new vdb.io/tls-hash")
        wait_for(lambda: _converged(namespace, 3) and all(
            p["metadata"]["annotations"].get(TLS_HASH) == _template_tls_hash(namespace) for p in _pods(namespace)),
            timeout=300, interval=2, what="every pod on the new certificate")
        elapsed = time.monotonic() - start
        loop.wait_acked(loop.acked() + 50)
    result = loop.stop()
    _report("certificate rotation (3 pods)", result, watch, elapsed)
    for ordinal in range(3):
        assert _served_serial(namespace, f"{NAME}-{ordinal}", ca) == new_serial
    assert _secret_data(namespace, f"{NAME}-ca", "ca.crt") == ca  # same CA: clients keep trusting
    assert watch.worst <= 1
    assert result.failed == 0, result
    assert result.lost_count == 0, f"acknowledged writes lost: {result.lost}"


def test_operator_killed_mid_rollout_converges(namespace: Kubectl, operator: OperatorProcess) -> None:
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(namespace)}
    namespace.run("patch", "vc", NAME, "--type=merge", "-p", f'{{"spec": {{"image": "{ENGINE_IMAGE}"}}}}')

    def one_rolled() -> str | None:
        done = [p for p in _pods(namespace) if _image(p) == ENGINE_IMAGE and _ready(p)]
        return done[0]["metadata"]["name"] if done else None
    with NotReadyWatch(namespace, 3) as watch:
        first = wait_for(one_rolled, timeout=180, interval=0.5, what="the first pod on the new image")
        operator.kill()
        killed = time.monotonic()
        first_uid = next(p["metadata"]["uid"] for p in _pods(namespace) if p["metadata"]["name"] == first)
        rolled = sorted(p["metadata"]["name"] for p in _pods(namespace) if _image(p) == ENGINE_IMAGE)
        operator.start()
        _wait_converged(namespace, 3, ENGINE_IMAGE)
    print(f"\noperator SIGKILLed with {rolled} on the new image; restarted, the roll converged "
          f"{time.monotonic() - killed:.0f}s after the kill; at most {watch.worst} pod(s) not ready")
    assert watch.worst <= 1
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(namespace)}
    assert all(after[name] != uid for name, uid in before.items()), "a pod was never restarted"
    assert after[first] == first_uid, f"{first} was restarted again after the operator restart"
    vc, status = _status(namespace)
    assert status["observedGeneration"] == vc["metadata"]["generation"]
    assert status["image"] == ENGINE_IMAGE


def test_live_config_change_restarts_no_pod(namespace: Kubectl, operator: OperatorProcess) -> None:
    """appendfsync is a live setting: the operator changes the ConfigMap only, kubelet
    propagates it, every engine reloads it; no pod is restarted, the template is unchanged."""
    pods_before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(namespace)}
    template_before = namespace.json("get", "statefulset", NAME)["spec"]["template"]
    start = time.monotonic()
    namespace.run("patch", "vc", NAME, "--type=merge", "-p", '{"spec": {"config": {"appendfsync": "always"}}}')
    wait_for(lambda: "appendfsync = \"always\"" in namespace.json("get", "configmap", f"{NAME}-config")["data"]
             ["velocity.toml"], timeout=60, what="the ConfigMap to carry appendfsync = always")
    for ordinal in range(3):
        out = run_client(namespace, NAME, f"fsync-{ordinal}", pod_endpoint(namespace, NAME, ordinal),
                         "wait-setting", "persistence.appendfsync", "always")
        assert "SETTING persistence.appendfsync always" in out, out
    print(f"\nlive config change (appendfsync -> always) applied on 3 pods after "
          f"{time.monotonic() - start:.0f}s (kubelet ConfigMap propagation), no restart")
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(namespace)} == pods_before
    assert namespace.json("get", "statefulset", NAME)["spec"]["template"] == template_before
    assert all(_ready(p) for p in _pods(namespace))


def test_scale_3_to_1_keeps_data_and_claims(namespace: Kubectl, operator: OperatorProcess) -> None:
    primary = _status(namespace)[1]["currentPrimary"]
    claims = {c["metadata"]["name"] for c in namespace.json("get", "pvc")["items"]}
    loop = WriteLoop(namespace, NAME, "scale-writer", service_endpoint(namespace, NAME))
    loop.wait_acked(50)
    start = time.monotonic()
    with NotReadyWatch(namespace, 1) as watch:
        namespace.run("scale", f"vc/{NAME}", "--replicas=1")
        _wait_converged(namespace, 1, timeout=240)
        wait_for(lambda: _status(namespace)[1].get("currentPrimary") == f"{NAME}-0", timeout=60,
                 what=f"{NAME}-0 primary")
        elapsed = time.monotonic() - start
        loop.wait_acked(loop.acked() + 50)
    result = loop.stop()
    _report(f"scale 3 -> 1 (primary before: {primary})", result, watch, elapsed)
    assert result.failed == 0, result
    assert result.lost_count == 0, f"acknowledged writes lost: {result.lost}"
    assert f"MATCH {KEYS}" in run_client(namespace, NAME, "seed-after", pod_endpoint(namespace, NAME, 0),
                                         "count-stale", "seed", str(KEYS))
    left = {c["metadata"]["name"] for c in namespace.json("get", "pvc")["items"]}
    assert claims <= left, f"claims deleted on scale-down: {sorted(claims - left)}"
    assert any(c.endswith(f"{NAME}-2") for c in left)
    events = [(e["reason"], e["message"]) for e in namespace.json("get", "events")["items"]
              if e["involvedObject"].get("kind") == "VelocityCluster"]
    switchovers = [m for reason, m in events if reason == "Switchover"]
    print(f"switchover events: {switchovers}; failed attempts: "
          f"{[m for reason, m in events if reason == 'SwitchoverFailed']}")
    if primary != f"{NAME}-0":
        # Replicas are removed, never the primary: the operator hands the role to pod 0
        # (planned switchover) before the step that would remove the Lease holder.
        assert any(m.startswith(f"{primary} handed the primary role to {NAME}-0") for m in switchovers), events
