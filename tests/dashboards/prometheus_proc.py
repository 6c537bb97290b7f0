"""A real Prometheus (Debian's `prometheus`) as a test process, always cleaned up.

It scrapes the given targets every second with the standard cluster/namespace/pod labels
attached (as the PodMonitor's relabelling does in Kubernetes), optionally loads rule
files, and is queried over its HTTP API. Readiness and every condition are polled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.engine_proc import free_port, wait_until


class PrometheusError(RuntimeError):
    """Prometheus failed to start or answered an API call with an error."""


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port of a /metrics endpoint
    labels: dict[str, str]
    honor_labels: bool = False  # per job: taken from the job's first target


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise PrometheusError("no `prometheus` on PATH: run `make test-dashboards`, which installs it")
    return path


class PrometheusProcess:
    def __init__(self, base: Path, targets: list[ScrapeTarget], rule_files: list[Path] | None = None) -> None:
        self.base = base
        self.targets = targets
        self.rule_files = list(rule_files or [])
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "prometheus.log"

    def config(self) -> dict[str, Any]:
        first: dict[str, ScrapeTarget] = {}
        for t in self.targets:
            first.setdefault(t.job, t)
        # JSON is valid YAML, so no YAML writer is needed for the config file.
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            # One scrape config per job (Prometheus refuses duplicates), one static config
            # per target so each keeps its own labels.
            "scrape_configs": [
                {"job_name": job, "honor_labels": head.honor_labels,
                 "static_configs": [{"targets": [t.address], "labels": t.labels}
                                    for t in self.targets if t.job == job]}
                for job, head in first.items()
            ],
        }

    def start(self, timeout: float = 60.0) -> PrometheusProcess:
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "prometheus.yml"
        cfg.write_text(json.dumps(self.config(), indent=2))
        args = [
            prometheus_binary(),
            f"--config.file={cfg}",
            f"--storage.tsdb.path={self.base / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._ready_or_dead, timeout, interval=0.1, what="prometheus /-/ready")
        except TimeoutError:
            self.kill()
            raise PrometheusError(f"prometheus did not become ready:\n{self.log()}") from None
        if self.proc.poll() is not None:
            raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise PrometheusError(f"{path} {params}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"expected an instant vector from {expr}, got {data['resultType']}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()
