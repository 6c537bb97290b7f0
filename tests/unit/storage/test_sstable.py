"""SSTable build/read, bloom filter, manifest encoding and their corruption checks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from velocity_engine.storage.base import Record
from velocity_engine.storage.block_cache import BlockCache
from velocity_engine.storage.bloom import BloomFilter, build_filter
from velocity_engine.storage.errors import CorruptionError
from velocity_engine.storage.manifest import ManifestState, TableMeta, decode_manifest, encode_manifest
from velocity_engine.storage.merge import merge_newest_first
from velocity_engine.storage.sstable_builder import SSTableBuilder
from velocity_engine.storage.sstable_format import FOOTER_SIZE
from velocity_engine.storage.sstable_reader import SSTable


def _entries(n: int) -> list[tuple[bytes, Record | None]]:
    out: list[tuple[bytes, Record | None]] = []
    for i in range(n):
        key = f"key:{i:06d}".encode()
        out.append((key, None if i % 7 == 3 else Record(i % 4, b"v" * (i % 50), i * 10)))
    return out


def _build(path: Path, entries: list[tuple[bytes, Record | None]]) -> SSTable:
    b = SSTableBuilder(path, 1)
    for k, r in entries:
        b.add(k, r)
    info = b.finish()
    assert info.entries == len(entries) and info.size == path.stat().st_size
    return SSTable(path, 1, BlockCache(1 << 20))


def test_every_key_is_found_with_its_record_and_absent_keys_are_not(tmp_path: Path) -> None:
    entries = _entries(3000)
    t = _build(tmp_path / "t.sst", entries)
    assert len(t.last_keys) > 10, "several blocks"
    for k, r in entries:
        assert t.get(k) == (True, r)
    for probe in (b"", b"key:", b"key:000000\x00", b"zzz", b"key:002999\x00"):
        assert t.get(probe) == (False, None)
    assert t.smallest == entries[0][0] and t.largest == entries[-1][0]
    t.close()


def test_iter_from_any_start(tmp_path: Path) -> None:
    entries = _entries(1500)
    t = _build(tmp_path / "t.sst", entries)
    keys = [k for k, _ in entries]
    rng = random.Random(7)
    for start in [b"", b"key:0007", b"zz", *(rng.choice(keys) for _ in range(20)), keys[-1] + b"\x00"]:
        expect = [(k, r) for k, r in entries if k >= start]
        assert list(t.iter_from(start)) == expect
    t.close()


def test_unsorted_keys_are_refused(tmp_path: Path) -> None:
    b = SSTableBuilder(tmp_path / "t.sst", 1)
    b.add(b"b", None)
    with pytest.raises(ValueError):
        b.add(b"a", None)
    b.abort()
    assert not (tmp_path / "t.sst").exists()


def test_a_flipped_data_byte_is_reported_never_returned(tmp_path: Path) -> None:
    entries = _entries(2000)
    path = tmp_path / "t.sst"
    clean = _build(path, entries)
    block3 = clean._offsets[3]
    clean.close()
    data = bytearray(path.read_bytes())
    data[block3 + 10] ^= 0x01
    path.write_bytes(bytes(data))
    t = SSTable(path, 1, BlockCache(1 << 20))
    with pytest.raises(CorruptionError, match="data block 3 checksum mismatch") as exc_info:
        for k, _ in entries:
            t.get(k)
    assert exc_info.value.path == path and exc_info.value.offset == block3
    with pytest.raises(CorruptionError):
        list(t.iter_from(b""))
    t.close()


@pytest.mark.parametrize("where", ["footer", "magic", "index", "filter", "truncated"])
def test_damaged_metadata_refuses_to_open(tmp_path: Path, where: str) -> None:
    path = tmp_path / "t.sst"
    t = _build(path, _entries(500))
    index_off = t._offsets[-1] + t._sizes[-1]
    t.close()
    data = bytearray(path.read_bytes())
    if where == "footer":
        data[-FOOTER_SIZE + 2] ^= 0xFF
    elif where == "magic":
        data[-1] ^= 0xFF
    elif where == "filter":
        data[index_off + 3] ^= 0xFF
    elif where == "index":
        data[-FOOTER_SIZE - 6] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError):
        SSTable(path, 1, None)


def test_bloom_filter_has_no_false_negatives_and_about_one_percent_false_positives() -> None:
    keys = [f"present:{i}".encode() for i in range(20000)]
    bf = BloomFilter(build_filter(keys))
    assert all(bf.may_contain(k) for k in keys)
    fp = sum(bf.may_contain(f"absent:{i}".encode()) for i in range(20000))
    assert fp / 20000 < 0.02, f"false positive rate {fp / 20000:.4f}"


def test_manifest_round_trip_and_damage() -> None:
    st = ManifestState(9, 4, 1234, [TableMeta(5, 0, 100, 10, b"a", b"\xff\x00")])
    data = encode_manifest(st)
    assert decode_manifest(Path("M"), data) == st
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x20
        with pytest.raises(CorruptionError):
            decode_manifest(Path("M"), bytes(bad))
    with pytest.raises(CorruptionError):
        decode_manifest(Path("M"), data[:-1])


def test_merge_newest_version_wins() -> None:
    newer = [(b"a", Record(0, b"new")), (b"c", None)]
    older = [(b"a", Record(0, b"old")), (b"b", Record(0, b"b")), (b"c", Record(0, b"c"))]
    merged = list(merge_newest_first([newer, older]))
    assert merged == [(b"a", Record(0, b"new")), (b"b", Record(0, b"b")), (b"c", None)]
