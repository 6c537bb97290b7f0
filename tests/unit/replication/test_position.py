from __future__ import annotations

import pytest
from velocity_engine.replication.position import EpochHistory, Position


def test_epoch_of_follows_the_history() -> None:
    h = EpochHistory([(1, 1), (2, 101), (5, 300)])
    assert [h.epoch_of(s) for s in (0, 1, 100, 101, 299, 300, 10**9)] == [0, 1, 1, 2, 2, 5, 5]
    assert h.current == 5


def test_a_prefix_of_the_history_may_resume() -> None:
    h = EpochHistory([(1, 1), (2, 101)])
    assert h.holds(Position(0, 0), 150)
    assert h.holds(Position(1, 100), 150)
    assert h.holds(Position(2, 150), 150)


def test_a_divergent_tail_is_detected() -> None:
    # The old primary wrote 101..120 in epoch 1; the new one started epoch 2 at 101.
    h = EpochHistory([(1, 1), (2, 101)])
    assert not h.holds(Position(1, 120), 150)
    assert not h.holds(Position(2, 151), 150), "ahead of the primary"


def test_begin_refuses_to_go_back_and_drops_empty_epochs() -> None:
    h = EpochHistory([(1, 1)])
    h.begin(2, 50)
    h.begin(3, 50)  # epoch 2 wrote nothing
    assert h.entries == [(1, 1), (3, 50)]
    with pytest.raises(ValueError, match="does not follow"):
        h.begin(3, 60)
