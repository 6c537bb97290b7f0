"""The node's replication state that must survive restarts: DATA_DIR/replication/state.json.

    {"version": 1, "epoch": 3, "history": [[1, 1], [3, 812]],
     "role": "replica", "primary": "vdb://10.0.0.5:2005",
     "replicas": ["vdb://10.0.0.6:2005"]}

`epoch` is the highest epoch this node has seen (it never goes down: that
is what fences a deposed primary); `history` is the epoch history of the
log the node holds (position.py). Written atomically (temp + fsync +
rename) and only on role or epoch changes, which are rare. `replicas` (optional)
lists the replicas that streamed from this node while it was the primary: a
node that restarts as primary needs a majority of them back (async mode)
before it serves anything (read_proof.py). The position in
the log is not here: it is stored inside the data itself (position_record.py)
so that it is exactly as durable as the data it describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from velocity_engine.fsutil import atomic_write, make_private_dirs
from velocity_engine.replication.errors import StateFileError

Role = Literal["primary", "replica"]
VERSION = 1


@dataclass(slots=True)
class NodeState:
    epoch: int = 1
    history: list[tuple[int, int]] = field(default_factory=lambda: [(1, 1)])
    role: Role = "primary"
    primary: str = ""  # replica: the endpoint followed
    replicas: list[str] = field(default_factory=list)  # primary: replicas that streamed from it


def state_path(data_dir: Path) -> Path:
    return data_dir / "replication" / "state.json"


def load_state(data_dir: Path) -> NodeState | None:
    path = state_path(data_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateFileError(f"cannot read {path}: {exc}") from None
    try:
        if raw.get("version") != VERSION:
            raise StateFileError(f"{path}: unsupported version {raw.get('version')!r}")
        role = raw["role"]
        if role not in ("primary", "replica"):
            raise StateFileError(f"{path}: bad role {role!r}")
        history = [(int(e), int(s)) for e, s in raw["history"]]
        replicas = [str(r) for r in raw.get("replicas", [])]
        return NodeState(int(raw["epoch"]), history, role, str(raw.get("primary", "")), replicas)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{path}: malformed ({exc!r})") from None


def save_state(data_dir: Path, state: NodeState) -> None:
    path = state_path(data_dir)
    make_private_dirs(path.parent)
    doc = {
        "version": VERSION,
        "epoch": state.epoch,
        "history": [list(e) for e in state.history],
        "role": state.role,
        "primary": state.primary,
        "replicas": state.replicas,
    }
    atomic_write(path, (json.dumps(doc) + "\n").encode())
