"""The servers a run measures. Each Velocity scenario names the Redis scenario
that runs in the matching mode (transport, auth, persistence) as its baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TESTS = ("set", "get", "incr")
ServerKind = Literal["redis", "velocity"]


@dataclass(frozen=True)
class Scenario:
    name: str
    server: ServerKind
    desc: str
    tls: bool = False
    # Redis: appendonly + this appendfsync ("" = no persistence). Velocity: --appendfsync.
    appendfsync: str = ""
    # Velocity only: --storage (memory or lsm); "" = the engine's default.
    storage: str = ""
    baseline: str = ""

    @property
    def clients(self) -> tuple[str, ...]:
        # Redis is driven by its own tool and by vbench speaking RESP (the same
        # client code that drives Velocity), so client cost can be told apart.
        return ("redis-benchmark", "vbench-resp") if self.server == "redis" else ("vbench",)


_ALL = (
    Scenario("redis", "redis", "redis-server, no persistence, plaintext"),
    Scenario(
        "velocity-memory",
        "velocity",
        "velocity-engine --storage memory --insecure (plaintext, no auth)",
        storage="memory",
        baseline="redis",
    ),
    Scenario(
        "redis-aof",
        "redis",
        "redis-server appendonly yes, appendfsync everysec, plaintext",
        appendfsync="everysec",
    ),
    Scenario(
        "velocity",
        "velocity",
        "velocity-engine --insecure, default storage (plaintext, no auth)",
        baseline="redis-aof",
    ),
    Scenario(
        "redis-always",
        "redis",
        "redis-server appendonly yes, appendfsync always, plaintext",
        appendfsync="always",
    ),
    Scenario(
        "velocity-always",
        "velocity",
        "velocity-engine --insecure --appendfsync always (group commit; plaintext, no auth)",
        appendfsync="always",
        baseline="redis-always",
    ),
    Scenario(
        "redis-tls",
        "redis",
        "redis-server, TLS 1.3 port + requirepass, appendonly yes, appendfsync everysec",
        tls=True,
        appendfsync="everysec",
    ),
    Scenario(
        "velocity-tls",
        "velocity",
        "velocity-engine as users run it: TLS 1.3 + token, default storage",
        tls=True,
        baseline="redis-tls",
    ),
)
SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}
# The row the targets are judged on (as users run it), then the references.
TARGET_PAIRS = (
    ("velocity-tls", "redis-tls"),
    ("velocity", "redis-aof"),
    ("velocity-always", "redis-always"),
    ("velocity-memory", "redis"),
)
