"""Bloom filter: ~10 bits per key, 7 probes, ~1% false positives.

    filter := bits[nbytes] k:u8          (k probes; nbits = 8 * nbytes)
    probe i of key: (h1 + i * h2) mod nbits, where h1, h2 are the low and
    high 32 bits of BLAKE2b-64(key) read little-endian (h2 forced odd)

Double hashing (Kirsch & Mitzenmacher) needs one hash per key. BLAKE2b is in
every standard library and has no bad inputs; speed is fine at one hash per
lookup. The layout is in docs/formats/sstable.md.
"""

from __future__ import annotations

import hashlib
import math

BITS_PER_KEY = 10
PROBES = 7  # round(BITS_PER_KEY * ln 2)


def key_hashes(key: bytes) -> tuple[int, int]:
    """(h1, h2) of a key; compute once per lookup and ask every table's filter with it."""
    return _hashes(key)


def _hashes(key: bytes) -> tuple[int, int]:
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return h & 0xFFFFFFFF, (h >> 32) | 1


def build_filter(keys: list[bytes], bits_per_key: int = BITS_PER_KEY) -> bytes:
    nbits = max(64, len(keys) * bits_per_key)
    nbytes = (nbits + 7) // 8
    nbits = nbytes * 8
    k = max(1, min(30, round(bits_per_key * math.log(2))))
    bits = bytearray(nbytes)
    for key in keys:
        h1, h2 = _hashes(key)
        for i in range(k):
            pos = (h1 + i * h2) % nbits
            bits[pos >> 3] |= 1 << (pos & 7)
    bits.append(k)
    return bytes(bits)


class BloomFilter:
    """Read side over a filter block (a memoryview into the table's mmap)."""

    __slots__ = ("_bits", "_k", "_nbits")

    def __init__(self, block: bytes | memoryview) -> None:
        if len(block) < 2:
            raise ValueError("bloom filter block too short")
        self._bits = block[:-1]
        self._k = block[-1]
        self._nbits = len(self._bits) * 8

    def may_contain(self, key: bytes) -> bool:
        h1, h2 = _hashes(key)
        return self.may_contain_hashed(h1, h2)

    def may_contain_hashed(self, h1: int, h2: int) -> bool:
        bits = self._bits
        nbits = self._nbits
        for i in range(self._k):
            pos = (h1 + i * h2) % nbits
            if not bits[pos >> 3] & (1 << (pos & 7)):
                return False
        return True
