"""Range checks for epochs and sequence numbers that arrive from the wire.

The formats carry both as u64, but no legitimate value comes near that: an
epoch grows by one per promotion and a sequence number by one per write
batch. Values above 2^53 - 1 are refused with INVALID_ARGUMENT before they are
compared, stored or incremented, so `epoch + 1` and `seq + 1` never overflow
a u64 field (which once made every later write fail) and every value stays
exact in a JSON number (INFO, the Lease's annotations, the JavaScript SDK).
docs/replication.md ("Epochs a node adopts") states the rule.
"""

from __future__ import annotations

from vproto.errors import InvalidArgumentError

MAX_EPOCH = (1 << 53) - 1
MAX_SEQ = (1 << 53) - 1


def check_epoch(value: int, what: str) -> int:
    if not 0 <= value <= MAX_EPOCH:
        raise InvalidArgumentError(f"{what} {value} is out of range (0 to 2^53 - 1)")
    return value


def check_seq(value: int, what: str) -> int:
    if not 0 <= value <= MAX_SEQ:
        raise InvalidArgumentError(f"{what} {value} is out of range (0 to 2^53 - 1)")
    return value
