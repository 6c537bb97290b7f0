"""Command semantics with a controlled clock (no processes): TTL boundaries, INCR limits, SCAN cursors."""

from __future__ import annotations

import pytest
from velocity_engine.keyspace import Keyspace
from velocity_engine.storage import MemoryStorage
from vproto.errors import InvalidArgumentError, NotIntegerError, OverflowError_
from vproto.values import ValueKind, encode_int


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ks(clock: Clock) -> Keyspace:
    return Keyspace(MemoryStorage(), clock=clock)


def test_ttl_is_absolute_and_expires_exactly_at_the_deadline(ks: Keyspace, clock: Clock) -> None:
    ks.set(b"k", ValueKind.STRING, b"v", ttl_ms=100)
    assert ks.storage.get(b"k").expire_at_ms == 1_000_100  # type: ignore[union-attr]
    clock.now += 99
    assert ks.ttl(b"k") == 1 and ks.exists(b"k")
    clock.now += 1
    assert ks.lookup(b"k") is None and ks.ttl(b"k") == -2
    assert len(ks.storage) == 0 and ks.expired_total == 1


def test_incr_bounds(ks: Keyspace) -> None:
    ks.set(b"n", ValueKind.INT, encode_int(2**63 - 2))
    assert ks.incr(b"n", 1) == 2**63 - 1
    with pytest.raises(OverflowError_):
        ks.incr(b"n", 1)
    assert ks.incr(b"m", -(2**63)) == -(2**63)
    with pytest.raises(OverflowError_):
        ks.incr(b"m", -1)
    assert ks.lookup(b"m") is not None and ks.incr(b"m", 0) == -(2**63)
    for text in (b" 12", b"012", b"-0", b"1e3", b"99999999999999999999", b""):
        ks.set(b"s", ValueKind.STRING, text)
        with pytest.raises(NotIntegerError):
            ks.incr(b"s", 1)
    ks.set(b"s", ValueKind.STRING, b"-12")
    assert ks.incr(b"s", 2) == -10


def test_scan_cursor_sees_every_stable_key_once_despite_writes(ks: Keyspace) -> None:
    for i in range(0, 100, 2):
        ks.set(b"p:%03d" % i, ValueKind.STRING, b"")
    seen: list[bytes] = []
    cursor = b""
    inserted = 1
    while True:
        keys, cursor = ks.scan(b"p:", cursor, 7)
        seen += keys
        # Writes between pages: odd keys appear, some already-seen even keys go away.
        ks.set(b"p:%03d" % inserted, ValueKind.STRING, b"")
        inserted += 2
        if not cursor:
            break
    stable = [b"p:%03d" % i for i in range(0, 100, 2)]
    assert [k for k in seen if k in stable] == stable
    assert seen == sorted(set(seen))


def test_scan_validates_arguments(ks: Keyspace) -> None:
    with pytest.raises(InvalidArgumentError):
        ks.scan(b"a:", b"b:1", 10)
    with pytest.raises(InvalidArgumentError):
        ks.scan(b"", b"", 10**9)


def test_active_expiry_steps_are_bounded_and_complete(ks: Keyspace, clock: Clock) -> None:
    for i in range(1000):
        ks.set(b"e%d" % i, ValueKind.STRING, b"", ttl_ms=10)
    clock.now += 10
    ks.set(b"keep", ValueKind.STRING, b"", ttl_ms=10_000)
    steps = 0
    while len(ks.storage) > 1:
        checked, gone = ks.expire_some(20)
        assert checked <= 20 and gone <= checked  # one step never looks at more than its sample
        steps += 1
        assert steps < 1000, "the active cycle stopped making progress"
    assert ks.exists(b"keep") and ks.expired_total == 1000
