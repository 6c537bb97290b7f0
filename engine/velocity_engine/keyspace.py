"""Command semantics on top of a Storage: TTLs, conditions, INCR, CAS, SCAN.

Everything here runs on the event loop thread, one command at a time, which
is what makes single-key operations linearizable. Expiry is lazy (an expired
key is deleted when it is touched) plus an active cycle (expiry.py); either
way the deletion is a mutation like any other, so logs and replicas see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from vproto.errors import InvalidArgumentError, NotIntegerError, OverflowError_, WrongTypeError
from vproto.values import INT64_MAX, INT64_MIN, ValueKind, decode_int, encode_int

from velocity_engine.storage.base import Mutation, Record, Storage

SET_ALWAYS, SET_IF_ABSENT, SET_IF_PRESENT = 0, 1, 2
TTL_MISSING, TTL_NONE = -2, -1
SCAN_DEFAULT_COUNT = 100
SCAN_MAX_COUNT = 10_000
# Each key costs its length plus this in a ScanResponse (table, vector header, padding).
SCAN_KEY_OVERHEAD = 32
# The longest TTL accepted from the wire: 2^53 - 1 ms (~285,000 years). Any larger value is
# refused (INVALID_ARGUMENT) before it is added to the clock, so an absolute expiry always
# fits the signed 64-bit fields of the WAL, tables and snapshots (and a JavaScript number).
MAX_TTL_MS = (1 << 53) - 1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Keyspace:
    def __init__(self, storage: Storage, clock: Callable[[], int] = wall_ms) -> None:
        self.storage = storage
        self.clock = clock
        self.expired_total = 0
        # Durability tracking for connection.py: `writes` counts write batches; `unsettled`
        # maps each key written by a batch whose durability wait has not ended to that
        # batch's number, oldest first. A read of such a key sets `read_unsettled`, and the
        # reading connection's reply then waits for durability too: nobody reads a write
        # that could still be lost, and nobody else waits (no global head-of-line block).
        self.writes = 0
        self.unsettled: dict[bytes, int] = {}
        self.read_unsettled = False

    # -- reads --------------------------------------------------------------

    def lookup(self, key: bytes) -> Record | None:
        """The live record for key; an expired one is removed on the way."""
        rec = self.storage.get(key)
        if self.unsettled and key in self.unsettled:
            self.read_unsettled = True
        if rec is not None and rec.expire_at_ms and rec.expire_at_ms <= self.clock():
            self._expire(key)
            return None
        return rec

    def exists(self, key: bytes) -> bool:
        return self.lookup(key) is not None

    def ttl(self, key: bytes) -> int:
        rec = self.lookup(key)
        if rec is None:
            return TTL_MISSING
        if not rec.expire_at_ms:
            return TTL_NONE
        return max(0, rec.expire_at_ms - self.clock())

    def mget(self, keys: Sequence[bytes]) -> list[Record | None]:
        return [self.lookup(k) for k in keys]

    def scan(
        self, prefix: bytes, cursor: bytes, count: int, max_bytes: int = 1 << 62
    ) -> tuple[list[bytes], bytes]:
        """Keys with `prefix`, in byte order, after `cursor` (exclusive).

        Returns (keys, next_cursor); next_cursor is empty when done. A page ends
        early (with a cursor) when its encoded keys would pass `max_bytes`. The cursor
        is the last key returned, so a scan sees every key that exists for its
        whole duration exactly once, whatever writes happen between pages.
        """
        if cursor and not cursor.startswith(prefix):
            raise InvalidArgumentError("cursor does not belong to this prefix")
        count = count or SCAN_DEFAULT_COUNT
        if count > SCAN_MAX_COUNT:
            raise InvalidArgumentError(f"count {count} exceeds {SCAN_MAX_COUNT}")
        now = self.clock()
        start = cursor + b"\x00" if cursor else prefix
        keys: list[bytes] = []
        expired: list[bytes] = []
        more = False
        size = 0
        for key, rec in self.storage.iter_from(start):
            if not key.startswith(prefix):
                break
            if rec.expire_at_ms and rec.expire_at_ms <= now:
                expired.append(key)
                continue
            if self.unsettled and key in self.unsettled:
                self.read_unsettled = True
            size += len(key) + SCAN_KEY_OVERHEAD
            if len(keys) == count or (size > max_bytes and keys):
                more = True
                break
            keys.append(key)
        for key in expired:
            self._expire(key)
        return keys, (keys[-1] if more else b"")

    # -- writes -------------------------------------------------------------

    def _apply(self, batch: Sequence[Mutation]) -> None:
        self.storage.apply(batch)
        self.writes = n = self.writes + 1
        unsettled = self.unsettled
        for key, _ in batch:
            unsettled.pop(key, None)  # re-inserted at the end: the dict stays in batch order
            unsettled[key] = n

    def settle(self, mark: int) -> None:
        """Every batch up to `mark` is durable (or will never be acknowledged): stop tracking it."""
        unsettled = self.unsettled
        while unsettled:
            key = next(iter(unsettled))
            if unsettled[key] > mark:
                break
            del unsettled[key]

    def _expire_at(self, ttl_ms: int) -> int:
        if ttl_ms < 0:
            raise InvalidArgumentError(f"ttl_ms must be >= 0, got {ttl_ms}")
        if ttl_ms > MAX_TTL_MS:
            raise InvalidArgumentError(f"ttl_ms {ttl_ms} exceeds the maximum of {MAX_TTL_MS} (2^53 - 1)")
        return self.clock() + ttl_ms if ttl_ms else 0

    def set(self, key: bytes, kind: int, value: bytes, ttl_ms: int = 0, condition: int = SET_ALWAYS) -> bool:
        if condition != SET_ALWAYS:
            present = self.lookup(key) is not None
            if condition == SET_IF_ABSENT and present:
                return False
            if condition == SET_IF_PRESENT and not present:
                return False
            if condition not in (SET_IF_ABSENT, SET_IF_PRESENT):
                raise InvalidArgumentError(f"unknown SET condition {condition}")
        self._apply(((key, Record(kind, value, self._expire_at(ttl_ms))),))
        return True

    def delete(self, key: bytes) -> bool:
        if self.lookup(key) is None:
            return False
        self._apply(((key, None),))
        return True

    def incr(self, key: bytes, delta: int) -> int:
        rec = self.lookup(key)
        current = 0 if rec is None else _as_int(rec)
        result = current + delta
        if not INT64_MIN <= result <= INT64_MAX:
            raise OverflowError_(f"increment would overflow a signed 64-bit integer ({current} + {delta})")
        expire = rec.expire_at_ms if rec is not None else 0  # INCR keeps the TTL, as in Redis
        self._apply(((key, Record(ValueKind.INT, encode_int(result), expire)),))
        return result

    def expire(self, key: bytes, ttl_ms: int) -> bool:
        if ttl_ms <= 0:
            raise InvalidArgumentError(f"EXPIRE needs ttl_ms > 0, got {ttl_ms}")
        self._expire_at(ttl_ms)  # range check even when the key does not exist
        rec = self.lookup(key)
        if rec is None:
            return False
        self._apply(((key, Record(rec.kind, rec.value, self._expire_at(ttl_ms))),))
        return True

    def persist(self, key: bytes) -> bool:
        rec = self.lookup(key)
        if rec is None or not rec.expire_at_ms:
            return False
        self._apply(((key, Record(rec.kind, rec.value, 0)),))
        return True

    def cas(
        self,
        key: bytes,
        expected: bytes,
        expected_kind: int,
        expect_absent: bool,
        value: bytes,
        kind: int,
        ttl_ms: int,
    ) -> tuple[bool, Record | None]:
        """Write only if the current value matches; returns (applied, current when not)."""
        rec = self.lookup(key)
        ok = rec is None if expect_absent else (
            rec is not None and rec.value == expected and rec.kind == expected_kind
        )
        if not ok:
            return False, rec
        self._apply(((key, Record(kind, value, self._expire_at(ttl_ms))),))
        return True, None

    def mset(self, entries: Sequence[tuple[bytes, int, bytes, int]]) -> None:
        """Atomic: every (key, kind, value, ttl_ms) is written, or none is."""
        batch: list[Mutation] = [(k, Record(kind, v, self._expire_at(ttl))) for k, kind, v, ttl in entries]
        self._apply(batch)

    # -- expiry -------------------------------------------------------------

    def _expire(self, key: bytes) -> None:
        self.storage.apply(((key, None),))  # not tracked: an expired key reads as absent either way
        self.expired_total += 1

    def expire_some(self, sample: int) -> tuple[int, int]:
        """One step of the active cycle: (keys checked, keys expired)."""
        now = self.clock()
        pairs = self.storage.expiring_sample(sample)
        gone = 0
        for key, at in pairs:
            if at <= now:
                rec = self.storage.get(key)
                if rec is not None and rec.expire_at_ms and rec.expire_at_ms <= now:
                    self._expire(key)
                    gone += 1
        return len(pairs), gone


def _as_int(rec: Record) -> int:
    if rec.kind == ValueKind.INT:
        return decode_int(rec.value)
    if rec.kind in (ValueKind.BYTES, ValueKind.STRING):
        text = rec.value
        # Like Redis: a string holding a canonical decimal integer can be incremented.
        if 0 < len(text) <= 20 and text.lstrip(b"-").isdigit():
            n = int(text)
            if INT64_MIN <= n <= INT64_MAX and str(n).encode() == text:
                return n
        raise NotIntegerError("value is not an integer")
    held = "JSON" if rec.kind == ValueKind.JSON else f"a value of kind {rec.kind}"
    raise WrongTypeError(f"INCR needs an integer value, the key holds {held}")
