from __future__ import annotations

from pathlib import Path

import pytest
from velocity_engine.replication.errors import StateFileError
from velocity_engine.replication.state_file import NodeState, load_state, save_state, state_path


def test_round_trip(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None
    save_state(tmp_path, NodeState(3, [(1, 1), (3, 40)], "replica", "vdb://h:1"))
    assert load_state(tmp_path) == NodeState(3, [(1, 1), (3, 40)], "replica", "vdb://h:1")


@pytest.mark.parametrize("text", ["{", '{"version": 9}', '{"version": 1, "role": "boss"}'])
def test_a_bad_file_is_a_typed_error_naming_it(tmp_path: Path, text: str) -> None:
    path = state_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(StateFileError, match=r"state\.json"):
        load_state(tmp_path)
