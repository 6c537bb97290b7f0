"""Engine supervisor for the Node.js SDK's integration tests.

Starts real `velocity-engine` processes the way the Python tests do
(tests/support/engine_proc.py; TLS nodes through tests/integration/replication/
cluster.py, so they share one CA and token and replicas can follow a primary),
and takes commands as JSON lines on stdin, answering one JSON line each:

    {"op": "start", "name": "p"}                              TLS node of the cluster
    {"op": "start", "name": "r", "replica_of": "p"}           a replica of node p
    {"op": "start", "name": "i", "insecure": true}            plaintext, no auth
    {"op": "kill", "name": "p"}                               SIGKILL
    {"op": "restart", "name": "p"}                            same data dir, new process
    {"op": "caught_up", "primary": "p", "replicas": ["r"]}    until the replicas applied everything
    {"op": "ctl", "name": "p", "args": ["info", "--json"]}    velocityctl against node p

Every process is killed when stdin closes (the test ended, or died).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import EngineProcess


def describe(e: EngineProcess) -> dict[str, Any]:
    out: dict[str, Any] = {"endpoint": e.endpoint, "port": e.port, "metrics_port": e.metrics_port}
    if not e.insecure:
        out["ca"] = str(e.ca)
        out["token"] = e.token
        out["token_file"] = str(e.token_file)
    return out


class Supervisor:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.cluster: Cluster | None = None
        self.nodes: dict[str, EngineProcess] = {}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "start":
            name = cmd["name"]
            if cmd.get("insecure"):
                e = EngineProcess(self.base / name, insecure=True, extra_args=["--storage", "memory"]).start()
                self.nodes[name] = e
                return describe(e)
            if self.cluster is None:
                self.cluster = Cluster(self.base / "cluster")
            extra = ["--replica-of", self.nodes[cmd["replica_of"]].endpoint] if cmd.get("replica_of") else []
            e = self.cluster.node(name, *extra, *cmd.get("args", []))
            self.nodes[name] = e
            return describe(e)
        if op == "kill":
            self.nodes[cmd["name"]].kill()
            return {}
        if op == "restart":
            self.nodes[cmd["name"]].start()
            return describe(self.nodes[cmd["name"]])
        if op == "caught_up":
            assert self.cluster is not None, "no cluster node was started"
            primary, *replicas = (cast(Node, self.nodes[n]) for n in (cmd["primary"], *cmd["replicas"]))
            seq = self.cluster.wait_caught_up(primary, *replicas)
            return {"seq": seq}
        if op == "ctl":
            r = self.nodes[cmd["name"]].ctl(*cmd["args"])
            return {"rc": r.returncode, "stdout": r.stdout.decode(), "stderr": r.stderr.decode()}
        raise ValueError(f"unknown op {op!r}")

    def close(self) -> None:
        for n in self.nodes.values():
            n.kill()


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="velocity-node-"))
    sup = Supervisor(base)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = sup.handle(json.loads(line))
            except Exception as exc:  # reported to the test, which fails
                reply = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            print(json.dumps(reply), flush=True)
    finally:
        sup.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
