"""Where a node is in the replicated log, and which epoch wrote what.

Every batch has a sequence number (1, 2, ... across all epochs) and the
epoch of the primary that created it. A node's epoch history lists, oldest
first, (epoch, start_seq): epoch e wrote the batches from its start_seq up
to the next entry's start_seq - 1. Only one primary ever writes in an
epoch, so two nodes whose histories give the same epoch for sequence s
hold the same batches 1..s (Raft's log matching, by construction).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Position:
    """The last batch a node applied: (epoch that wrote it, its sequence number)."""

    epoch: int
    seq: int


@dataclass(slots=True)
class EpochHistory:
    entries: list[tuple[int, int]] = field(default_factory=list)  # (epoch, start_seq), ascending

    @property
    def current(self) -> int:
        return self.entries[-1][0] if self.entries else 0

    def epoch_of(self, seq: int) -> int:
        """The epoch that wrote batch `seq` (0 for seq 0: nothing written)."""
        if seq <= 0 or not self.entries:
            return 0
        starts = [s for _, s in self.entries]
        i = bisect_right(starts, seq) - 1
        return self.entries[i][0] if i >= 0 else 0

    def begin(self, epoch: int, start_seq: int) -> None:
        """A new epoch starts writing at start_seq (promotion)."""
        if self.entries and epoch <= self.entries[-1][0]:
            raise ValueError(f"epoch {epoch} does not follow {self.entries[-1][0]}")
        # An epoch that never wrote anything is superseded by the next one.
        while self.entries and self.entries[-1][1] >= start_seq:
            self.entries.pop()
        self.entries.append((epoch, start_seq))

    def holds(self, pos: Position, last_seq: int) -> bool:
        """Whether a node at `pos` holds a prefix of this history (so it may resume)."""
        if pos.seq == 0:
            return True
        return pos.seq <= last_seq and self.epoch_of(pos.seq) == pos.epoch
