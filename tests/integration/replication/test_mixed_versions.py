"""A primary and a replica of different engine versions during a rolling upgrade.

The engine before token roles knew one token for everything; a replica of
today's engine presents the replication token, and when an old primary
refuses it (AUTH_FAILED) it presents the client token instead, so a rolling
upgrade keeps replicating while the primary is still old. An old replica of a
new primary is refused with a message that says why (PERMISSION_DENIED).
The old engine is the source of commit OLD_REV, taken from this repository's
history.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until

OLD_REV = "e14c671"  # the last engine before token roles (issue 11)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def old_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("old-engine")
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_REV, "engine", "proto/python"],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"this test needs the repository's history (git archive {OLD_REV}): {exc}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


class OldNode(Node):
    """An engine of OLD_REV: one token (--auth-token-file) for clients, admins and replicas."""

    def __init__(self, base: Path, cluster: Cluster, source: Path, extra: list[str]) -> None:
        super().__init__(base, cluster.tls, cluster.token_file, extra)
        self.source = source
        self.env["PYTHONPATH"] = f"{source / 'engine'}:{source / 'proto' / 'python'}"

    def args(self) -> list[str]:
        new = super().args()
        # Drop the role flags the old engine does not know; run its code with this venv.
        out: list[str] = []
        skip = False
        for a in new[1:]:
            if skip:
                skip = False
                continue
            if a in ("--admin-token-file", "--replication-token-file"):
                skip = True
                continue
            out.append(a)
        return [sys.executable, "-c", "from velocity_engine.cli import main; main()", *out]

    def ctl_env(self) -> dict[str, str]:
        env = super().ctl_env()
        env["VDB_ADMIN_TOKEN_FILE"] = str(self.token_file)  # the old engine's only token
        return env

    def data_plane_args(self) -> list[str]:
        return []  # the old engine has one data plane and no --data-plane flag


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.close()


def _write(n: Node, key: str) -> None:
    assert n.ctl("set", key, "v", check=True).returncode == 0


def test_a_new_replica_follows_an_old_primary(cluster: Cluster, old_source: Path) -> None:
    old = OldNode(cluster.base / "old", cluster, old_source, [])
    cluster.nodes.append(old)
    old.start()
    _write(old, "before")
    # The new replica is native (the default): it falls back to the
    # client token as the Python follower does, and follows the old primary in stream version 1
    # (that primary ignores the version field and answers as version 1).
    new = cluster.node("new", "--replica-of", old.endpoint)
    cluster.wait_caught_up(old, new, timeout=30)
    _write(old, "after")
    cluster.wait_caught_up(old, new, timeout=30)
    assert new.repl()["role"] == "replica" and new.seq() == old.seq()


def test_an_old_replica_of_a_new_primary_is_refused_with_a_reason(cluster: Cluster, old_source: Path) -> None:
    new = cluster.node("new")
    old = OldNode(cluster.base / "old", cluster, old_source, ["--replica-of", new.endpoint])
    cluster.nodes.append(old)
    old.start()
    # The old engine does not know code 22 (PERMISSION_DENIED) and shows it as generic; the message says it.
    wait_until(lambda: "the client token may not run REPL_SYNC" in old.log(), 30,
               what="the old replica to log the refusal")
