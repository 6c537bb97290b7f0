"""Reading an SSTable through mmap: point lookups and ordered iteration.

Lifetime: the table is opened once (footer, index and filter are checked
then) and closed by the LSM when no version references it any more. Reads
never copy a block: they binary-search a memoryview of the mapping using the
block's offset array. A block's CRC is checked on every read that misses the
block cache; a mismatch raises CorruptionError naming the file and offset,
never wrong data.

Threads: `get` runs on the loop thread (it uses the shared block cache);
`iter_from`/`iter_all` may run on background threads (flush, compaction,
snapshot) and bypass the cache.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import zlib
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from velocity_engine.storage.base import Record
from velocity_engine.storage.block_cache import BlockCache
from velocity_engine.storage.bloom import BloomFilter, key_hashes
from velocity_engine.storage.entry_codec import EntryFormatError, decode_entry
from velocity_engine.storage.errors import CorruptionError
from velocity_engine.storage.sstable_format import FOOTER, FOOTER_CHECKED, FOOTER_SIZE, INDEX_TAIL, MAGIC, U32, VERSION

_KEY_HEAD = struct.Struct("<BI")


@dataclass
class BloomStats:
    """Loop-thread counters for velocity_bloom_* metrics."""

    negative: int = 0
    maybe: int = 0
    false_positive: int = 0


class SSTable:
    def __init__(
        self, path: Path, number: int, cache: BlockCache | None, bloom_stats: BloomStats | None = None
    ) -> None:
        self.path = path
        self.number = number
        self.cache = cache
        self.bloom_stats = bloom_stats or BloomStats()
        fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            if self.size < FOOTER_SIZE:
                raise CorruptionError(path, 0, f"file of {self.size} bytes is shorter than a footer")
            self._mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._view = memoryview(self._mm)
        try:
            self._load_meta()
        except BaseException:
            self.close()
            raise

    def _corrupt(self, offset: int, reason: str) -> CorruptionError:
        return CorruptionError(self.path, offset, reason)

    def _load_meta(self) -> None:
        v = self._view
        foot = self.size - FOOTER_SIZE
        index_off, index_size, filter_off, filter_size, entries, version, fcrc, magic = FOOTER.unpack_from(v, foot)
        if magic != MAGIC:
            raise self._corrupt(foot + FOOTER_SIZE - 8, f"bad magic {bytes(magic)!r}, not an SSTable")
        if zlib.crc32(v[foot : foot + FOOTER_CHECKED]) != fcrc:
            raise self._corrupt(foot, "footer checksum mismatch")
        if version != VERSION:
            raise self._corrupt(foot, f"unsupported SSTable version {version}")
        if not (0 <= filter_off <= index_off and filter_off + filter_size == index_off
                and index_off + index_size == foot):
            raise self._corrupt(foot, "footer offsets are inconsistent")
        self.entries = entries
        filt = self._checked(filter_off, filter_size, "filter block")
        self.bloom = BloomFilter(filt)
        index = self._checked(index_off, index_size, "index block")
        last_keys: list[bytes] = []
        offsets: list[int] = []
        sizes: list[int] = []
        pos = 0
        try:
            while pos < len(index):
                (klen,) = U32.unpack_from(index, pos)
                pos += 4
                last_keys.append(bytes(index[pos : pos + klen]))
                pos += klen
                off, size = INDEX_TAIL.unpack_from(index, pos)
                pos += INDEX_TAIL.size
                offsets.append(off)
                sizes.append(size)
        except struct.error:
            raise self._corrupt(index_off + pos, "index block does not parse") from None
        self.last_keys = last_keys
        self._offsets = offsets
        self._sizes = sizes
        self.largest = last_keys[-1] if last_keys else b""
        self.smallest = self._first_key() if last_keys else b""

    def _checked(self, offset: int, size: int, what: str) -> memoryview:
        """The block's bytes without its CRC, after checking the CRC."""
        if size < 4 or offset + size > self.size:
            raise self._corrupt(offset, f"{what} of {size} bytes does not fit the file")
        body = self._view[offset : offset + size - 4]
        (crc,) = U32.unpack_from(self._view, offset + size - 4)
        if zlib.crc32(body) != crc:
            raise self._corrupt(offset, f"{what} checksum mismatch")
        return body

    def _load_block(self, i: int) -> tuple[memoryview, tuple[int, ...]]:
        off = self._offsets[i]
        body = self._checked(off, self._sizes[i], f"data block {i}")
        if len(body) < 4:
            raise self._corrupt(off, f"data block {i} too short")
        (n,) = U32.unpack_from(body, len(body) - 4)
        start = len(body) - 4 - 4 * n
        if start < 0:
            raise self._corrupt(off, f"data block {i} claims {n} entries")
        offsets = struct.unpack_from(f"<{n}I", body, start)
        return body[:start], offsets

    def _block(self, i: int) -> tuple[memoryview, tuple[int, ...]]:
        cache = self.cache
        if cache is None:
            return self._load_block(i)
        key = (self.number, i)
        hit = cache.get(key)
        if hit is not None:
            return hit
        blk = self._load_block(i)
        cache.put(key, blk, self._sizes[i])
        return blk

    def _first_key(self) -> bytes:
        data, offs = self._load_block(0)
        return self._key_at(data, offs[0], 0)

    def _key_at(self, data: memoryview, off: int, block: int) -> bytes:
        try:
            _, klen = _KEY_HEAD.unpack_from(data, off)
        except struct.error:
            raise self._corrupt(self._offsets[block] + off, "entry header out of bounds") from None
        return bytes(data[off + 5 : off + 5 + klen])

    def _decode(self, data: memoryview, off: int, block: int) -> tuple[bytes, Record | None]:
        try:
            key, rec, _ = decode_entry(data, off)
        except EntryFormatError as exc:
            raise self._corrupt(self._offsets[block] + off, str(exc)) from None
        return key, rec

    def _search(self, data: memoryview, offs: tuple[int, ...], key: bytes, block: int) -> int:
        """Index of the first entry with key >= `key` in the block."""
        # Inlined _key_at: this loop is most of a table lookup's CPU.
        unpack = _KEY_HEAD.unpack_from
        lo, hi = 0, len(offs)
        try:
            while lo < hi:
                mid = (lo + hi) // 2
                off = offs[mid]
                klen = unpack(data, off)[1]
                if bytes(data[off + 5 : off + 5 + klen]) < key:
                    lo = mid + 1
                else:
                    hi = mid
        except struct.error:
            raise self._corrupt(self._offsets[block], "entry header out of bounds") from None
        return lo

    # -- reads ---------------------------------------------------------------------

    def get(self, key: bytes, hashes: tuple[int, int] | None = None) -> tuple[bool, Record | None]:
        """(found, record); found with None is a tombstone. `hashes`: bloom.key_hashes(key), if known."""
        st = self.bloom_stats
        h1, h2 = hashes if hashes is not None else key_hashes(key)
        if not self.bloom.may_contain_hashed(h1, h2):
            st.negative += 1
            return False, None
        st.maybe += 1
        i = bisect_left(self.last_keys, key)
        if i < len(self.last_keys):
            data, offs = self._block(i)
            j = self._search(data, offs, key, i)
            if j < len(offs) and self._key_at(data, offs[j], i) == key:
                return True, self._decode(data, offs[j], i)[1]
        st.false_positive += 1
        return False, None

    def iter_from(self, start: bytes) -> Iterator[tuple[bytes, Record | None]]:
        i = bisect_left(self.last_keys, start)
        first = True
        while i < len(self.last_keys):
            data, offs = self._load_block(i)
            j = self._search(data, offs, start, i) if first else 0
            first = False
            for k in range(j, len(offs)):
                yield self._decode(data, offs[k], i)
            i += 1

    def iter_all(self) -> Iterator[tuple[bytes, Record | None]]:
        return self.iter_from(b"")

    def verify(self) -> int:
        """Check every block (the check tool); returns the entry count."""
        n = 0
        for i in range(len(self._offsets)):
            data, offs = self._load_block(i)
            for off in offs:
                self._decode(data, off, i)
                n += 1
        return n

    def close(self) -> None:
        if self.cache is not None:
            self.cache.drop_table(self.number)
        # Views handed to iterators may still be alive; then the mapping is
        # freed by the garbage collector once they are gone.
        with contextlib.suppress(BufferError):
            self._view.release()
            self._mm.close()
