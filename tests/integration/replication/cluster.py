"""A primary and replicas as real `velocity-engine` processes sharing one CA and token.

Every node gets the same server certificate (SAN 127.0.0.1) and the same
cluster token, as pods of one VelocityCluster do; replicas trust the CA
through --replica-ca. Processes are killed when the test ends.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from velocity_engine.tls import TlsFiles, ensure_generated

from tests.support.engine_proc import EngineProcess, wait_until


class Node(EngineProcess):
    """An engine; with `netns` it runs inside that network namespace, reachable at `host`."""

    def __init__(
        self, base: Path, tls: TlsFiles, token_file: Path, extra: list[str],
        host: str = "127.0.0.1", netns: str | None = None,
    ) -> None:
        assert tls.ca is not None
        self.tls = tls
        self._token_file = token_file
        # Every node of a cluster shares the admin and replication credentials too.
        self._admin_token_file = token_file.with_name("admin-token")
        repl_token_file = token_file.with_name("replication-token")
        self.host = host
        self.netns = netns
        args = [
            "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--auth-token-file", str(token_file),
            "--admin-token-file", str(self._admin_token_file), "--replication-token-file", str(repl_token_file),
            "--replica-ca", str(tls.ca), "--storage", os.environ.get("REPL_TEST_STORAGE", "lsm"),
            "--host", host, "--metrics-host", host, *extra,
        ]
        super().__init__(base, extra_args=args)

    def args(self) -> list[str]:
        a = super().args()
        return ["ip", "netns", "exec", self.netns, *a] if self.netns else a

    @property
    def endpoint(self) -> str:
        return f"vdb://{self.host}:{self.port}"

    def http_get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.metrics_port}{path}", timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read())

    @property
    def ca(self) -> Path:
        assert self.tls.ca is not None
        return self.tls.ca

    @property
    def token_file(self) -> Path:
        return self._token_file

    @property
    def admin_token_file(self) -> Path:
        return self._admin_token_file

    def info(self) -> dict[str, Any]:
        out = self.ctl("info", "--json", check=True)
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def repl(self) -> dict[str, Any]:
        r: dict[str, Any] = self.info()["replication"]
        return r

    def seq(self) -> int:
        return int(self.repl()["seq"])


class Cluster:
    def __init__(self, base: Path, names: tuple[str, ...] = ()) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_generated(base / "tls", ["127.0.0.1", "localhost", *names])
        self.token_file = base / "token"
        for name in ("token", "admin-token", "replication-token"):
            f = base / name
            f.write_text(secrets.token_hex(16) + "\n")
            f.chmod(0o600)
        self.nodes: list[Node] = []

    def node(
        self, name: str, *extra: str, start: bool = True, host: str = "127.0.0.1", netns: str | None = None,
    ) -> Node:
        n = Node(self.base / name, self.tls, self.token_file, list(extra), host, netns)
        self.nodes.append(n)
        if start:
            n.start()
        return n

    def close(self) -> None:
        for n in self.nodes:
            n.kill()

    def wait_caught_up(self, primary: Node, *replicas: Node, timeout: float = 20.0) -> int:
        """Until every replica applied everything the primary has (polled via INFO)."""
        target = primary.seq()

        def done() -> bool:
            return all(r.seq() >= target and r.repl()["role"] == "replica" for r in replicas)

        wait_until(done, timeout, interval=0.05, what=f"replicas to reach seq {target}")
        return target
