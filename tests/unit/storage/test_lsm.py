"""LsmStorage end to end on a real directory (no event loop: flush and compaction run inline)."""

from __future__ import annotations

import random
from pathlib import Path

from velocity_engine.keyspace import Keyspace
from velocity_engine.storage.base import Record
from velocity_engine.storage.filenames import table_numbers, wal_numbers
from velocity_engine.storage.lsm import LsmOptions, LsmStorage

SMALL = LsmOptions(appendfsync="no", memtable_bytes=16 * 1024, compaction_rate_bytes=1 << 30)


def _open(d: Path, opts: LsmOptions = SMALL) -> LsmStorage:
    return LsmStorage(d, opts)


def _check_model(st: LsmStorage, model: dict[bytes, Record]) -> None:
    assert len(st) == len(model)
    assert list(st.iter_from(b"")) == sorted(model.items())
    for k, r in model.items():
        assert st.get(k) == r


def test_flush_trims_the_wal_and_compaction_merges_tiers(tmp_path: Path) -> None:
    st = _open(tmp_path)
    model: dict[bytes, Record] = {}
    for i in range(6000):
        k = f"k{i % 2500:05d}".encode()
        r = Record(0, f"value-{i}".encode() * 3)
        st.apply([(k, r)])
        model[k] = r
    assert st.flushes >= 8
    assert st.compaction_stats.compactions >= 1
    assert st.wait_idle()
    tiers = st.tables_by_tier()
    assert max(tiers) >= 1, tiers
    assert all(n < 4 for n, _ in tiers.values()), "every full tier was merged"
    sdir = tmp_path / "storage"
    assert wal_numbers(sdir) == [st.wal.segment], "flushed segments are deleted"
    assert set(table_numbers(sdir)) == {m.number for m in st._state.tables}, "compacted inputs are deleted"
    _check_model(st, model)
    st.close()
    st2 = _open(tmp_path)
    _check_model(st2, model)
    st2.close()


def test_random_operations_match_a_dict_across_reopens(tmp_path: Path) -> None:
    rng = random.Random(42)
    model: dict[bytes, Record] = {}
    st = _open(tmp_path)
    for step in range(8000):
        k = f"k{rng.randrange(600):04d}".encode()
        op = rng.random()
        if op < 0.6:
            r = Record(rng.randrange(4), rng.randbytes(rng.randrange(0, 120)))
            st.apply([(k, r)])
            model[k] = r
        elif op < 0.85:
            st.apply([(k, None)])
            model.pop(k, None)
        else:
            batch = [(f"m{rng.randrange(600):04d}".encode(), Record(1, b"x" * rng.randrange(10))) for _ in range(5)]
            st.apply(batch)
            model.update(batch)
        if step % 2000 == 1999:
            _check_model(st, model)
            st.close()
            st = _open(tmp_path)
            _check_model(st, model)
    st.close()


def test_compaction_drops_tombstones_and_expired_keys_at_the_bottom(tmp_path: Path) -> None:
    st = _open(tmp_path)
    past = 1_000  # long expired
    for i in range(3000):
        st.apply([(f"e{i:05d}".encode(), Record(0, b"x" * 20, past))])
    for i in range(3000):
        st.apply([(f"d{i:05d}".encode(), Record(0, b"y" * 20))])
    for i in range(3000):
        st.apply([(f"d{i:05d}".encode(), None)])
    for i in range(3000):
        st.apply([(f"z{i:05d}".encode(), Record(0, b"z" * 20))])
    assert st.compaction_stats.compactions >= 2
    keys = {k for k, _ in st.iter_from(b"")}
    assert not any(k.startswith(b"d") for k in keys)
    stored = sum(m.entries for m in st._state.tables)
    # The bottom merge dropped tombstones and expired values; z-keys survive.
    assert stored < 3000 * 4
    assert all(st.get(f"z{i:05d}".encode()) is not None for i in range(0, 3000, 97))
    st.close()


def test_expired_keys_are_never_returned_through_the_keyspace(tmp_path: Path) -> None:
    now = [10_000]
    st = _open(tmp_path)
    ks = Keyspace(st, clock=lambda: now[0])
    for i in range(2000):
        ks.set(f"t{i:05d}".encode(), 0, b"v" * 30, ttl_ms=500 if i % 2 else 0)
    now[0] += 1000
    assert all(ks.lookup(f"t{i:05d}".encode()) is None for i in range(1, 2000, 2))
    keys, _ = ks.scan(b"t", b"", 10_000)
    assert len(keys) == 1000 and all(int(k[1:]) % 2 == 0 for k in keys)
    st.close()


def test_ttls_survive_a_restart_as_absolute_times(tmp_path: Path) -> None:
    st = _open(tmp_path)
    st.apply([(b"a", Record(0, b"1", 1_900_000_000_000))])
    for i in range(2000):
        st.apply([(f"f{i}".encode(), Record(0, b"x" * 20))])  # push `a` into a table
    st.close()
    st2 = _open(tmp_path)
    assert st2.get(b"a") == Record(0, b"1", 1_900_000_000_000)
    st2.close()


def test_orphans_of_an_interrupted_flush_are_removed(tmp_path: Path) -> None:
    st = _open(tmp_path)
    for i in range(2000):
        st.apply([(f"k{i}".encode(), Record(0, b"v" * 20))])
    st.close()
    sdir = tmp_path / "storage"
    (sdir / "table-999999.sst").write_bytes(b"half a table")
    (sdir / "MANIFEST-999998").write_bytes(b"never published")
    st2 = _open(tmp_path)
    assert not (sdir / "table-999999.sst").exists() and not (sdir / "MANIFEST-999998").exists()
    assert st2.get(b"k1999") == Record(0, b"v" * 20)
    assert st2._next_file > 999999, "numbers are never reused"
    st2.close()
