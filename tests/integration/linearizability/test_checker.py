"""The checker is shown to reject corrupted histories (and to accept the real one they came from).

A real history is recorded against one engine, checked (linearizable), then
corrupted in ways a broken database would produce; each corruption must make
the checker answer Illegal, naming the key. The model's own cases (stale
reads, duplicated increments, unknown outcomes) are Go tests beside it
(tests/linearizability/checker/checker_test.go, `make test-linearizability-checker`).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.linearizability.checker import check
from tests.integration.linearizability.recorder import Recorder, Router
from tests.integration.replication.cluster import Cluster

Op = dict[str, Any]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[Op]:
    base = tmp_path_factory.mktemp("recorded")
    cluster = Cluster(base / "cluster")
    try:
        node = cluster.node("p")
        path = base / "history.jsonl"

        async def load() -> None:
            await asyncio.sleep(3)  # how long the clients record: not a synchronisation

        asyncio.run(Recorder(path, Router(node), clients=8, seed=7).run(load))
    finally:
        cluster.close()
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, ops: list[Op]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return path


def _reads_of_set_values(ops: list[Op]) -> list[tuple[int, int]]:
    """(index of a completed GET, index of the SET whose unique value it read)."""
    writer = {o["value"]: i for i, o in enumerate(ops) if o["op"] == "set"}
    incr_results = {o["result"] for o in ops if o["op"] == "incr"}
    return [(i, writer[o["result"]]) for i, o in enumerate(ops)
            if o["op"] == "get" and o["result"] in writer and o["result"] not in incr_results]


def never_written(ops: list[Op], rnd: random.Random) -> tuple[list[Op], str]:
    """A read returns a value nobody wrote (a torn or invented value)."""
    ops = [dict(o) for o in ops]
    i = rnd.choice([i for i, o in enumerate(ops) if o["op"] == "get"])
    ops[i]["result"] = -12345
    return ops, ops[i]["key"]


def read_before_write(ops: list[Op], rnd: random.Random) -> tuple[list[Op], str]:
    """A read returns a value before the write of that value was even called (a reordered log)."""
    ops = [dict(o) for o in ops]
    g, s = rnd.choice(_reads_of_set_values(ops))
    ops[g]["call"], ops[g]["return"] = ops[s]["call"] - 2, ops[s]["call"] - 1
    return ops, ops[g]["key"]


def lost_write(ops: list[Op], rnd: random.Random) -> tuple[list[Op], str]:
    """An acknowledged SET vanishes while a later read saw its value (a write lost in failover)."""
    _, s = rnd.choice(_reads_of_set_values(ops))
    key = ops[s]["key"]
    return [dict(o) for i, o in enumerate(ops) if i != s], key


def stale_read(ops: list[Op], rnd: random.Random) -> tuple[list[Op], str]:
    """After the history, a client writes a key, then another reads the previous value (a deposed primary)."""
    ops = [dict(o) for o in ops]
    end = max(o["return"] for o in ops if o["status"] == "ok")
    key = rnd.choice(sorted({o["key"] for o in ops}))
    ops.append({"client": 8, "op": "set", "key": key, "value": 7, "result": None,
                "call": end + 10, "return": end + 20, "status": "ok"})
    ops.append({"client": 9, "op": "set", "key": key, "value": 8, "result": None,
                "call": end + 30, "return": end + 40, "status": "ok"})
    ops.append({"client": 10, "op": "get", "key": key, "value": None, "result": 7,
                "call": end + 50, "return": end + 60, "status": "ok"})
    return ops, key


CORRUPTIONS: dict[str, Callable[[list[Op], random.Random], tuple[list[Op], str]]] = {
    "never_written": never_written,
    "read_before_write": read_before_write,
    "lost_write": lost_write,
    "stale_read": stale_read,
}


def test_the_recorded_history_is_linearizable(recorded: list[Op], tmp_path: Path, checker_bin: Path) -> None:
    assert len(recorded) > 2000, f"only {len(recorded)} operations recorded"
    assert {o["op"] for o in recorded} == {"get", "set", "incr"}
    verdict = check(checker_bin, _write(tmp_path / "h.jsonl", recorded))
    assert verdict.ok and verdict.ops == len(recorded)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_corrupted_history_is_rejected(
    name: str, seed: int, recorded: list[Op], tmp_path: Path, checker_bin: Path
) -> None:
    ops, key = CORRUPTIONS[name](recorded, random.Random(seed))
    verdict = check(checker_bin, _write(tmp_path / f"{name}.jsonl", ops))
    assert verdict.result == "Illegal", f"{name} (seed {seed}) was not caught: {verdict.result}"
    assert key in verdict.bad_keys
