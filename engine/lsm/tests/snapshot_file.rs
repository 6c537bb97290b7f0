//! Snapshot files (docs/formats/snapshot.md): the worked example byte for byte, damage
//! refused, and a restore that opens at the same contents.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use velocity_lsm::fs::FileSystem;
use velocity_lsm::snapshot_file::{read_snapshot_file, restore_snapshot_file, write_snapshot_file};
use velocity_lsm::testing::SimFs;
use velocity_lsm::{Db, Mutation, Record};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_worked_example_of_snapshot_md() {
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(sim_opts(&fs)).unwrap();
    db.commit(1, vec![Mutation::put("a", Record::new(0, &b"1"[..]))])
        .unwrap();
    db.commit(
        1,
        vec![Mutation::put(
            "b",
            Record {
                kind: 0,
                value: Bytes::from_static(b"x"),
                expire_at_ms: 5,
            },
        )],
    )
    .unwrap();
    db.commit(
        1,
        vec![Mutation::put("c", Record::new(0, &b"2"[..])), Mutation::delete("c")],
    )
    .unwrap();
    let path = Path::new(SIM_ROOT).join("snap.vsnap");
    let info = write_snapshot_file(&fs, &path, &db.snapshot(), 1_764_213_600_000).unwrap();
    let want = hex("56 53 4e 41 50 53 48 31 01 00 00 00 00 00 00 00
         00 2f 53 c3 9a 01 00 00 00 00 00 00 00 00 00 00
         14 00 00 00 12 97 2b 2a
         01 01 00 00 00 61 00 00 00 00 00 00 00 00 00 01 00 00 00 31
         00 00 00 00 01 00 00 00 00 00 00 00 b4 ad 6e 43 56 53 4e 41 50 45 4e 44");
    assert_eq!(
        fs.contents(&path).unwrap(),
        want,
        "expired values and tombstones are left out"
    );
    assert_eq!((info.entries, info.size), (1, want.len() as u64));
    let (info2, entries) = read_snapshot_file(&fs, &path).unwrap();
    assert_eq!(info2, info);
    assert_eq!(entries, vec![(Bytes::from_static(b"a"), Record::new(0, &b"1"[..]))]);
    for at in [3, 40, 50, want.len() - 10] {
        let mut bad = want.clone();
        bad[at] ^= 1;
        fs.write_file(&path, &bad).unwrap();
        assert!(read_snapshot_file(&fs, &path).is_err(), "byte {at}");
    }
    fs.write_file(&path, &want[..want.len() - 1]).unwrap();
    assert!(read_snapshot_file(&fs, &path).is_err());
}

#[test]
fn restore_builds_a_database_once_and_keeps_later_writes_on_restart() {
    let fs = SimFs::new(SIM_ROOT);
    let mut o = sim_opts(&fs);
    o.dir = Path::new(SIM_ROOT).join("src");
    let db = Db::open(o).unwrap();
    for i in 0..500 {
        db.commit(3, vec![put(&format!("k{i:04}"), &"v".repeat(i % 50))])
            .unwrap();
    }
    db.flush().unwrap();
    db.commit(3, vec![del("k0007")]).unwrap();
    let path = Path::new(SIM_ROOT).join("snap.vsnap");
    write_snapshot_file(&fs, &path, &db.snapshot(), 1).unwrap();
    let dir = Path::new(SIM_ROOT).join("restored/storage");
    assert_eq!(restore_snapshot_file(&fs, &path, &dir).unwrap().unwrap().entries, 499);
    let mut o = sim_opts(&fs);
    o.dir = dir.clone();
    let restored = Db::open(o.clone()).unwrap();
    assert_eq!(dump(&restored), dump(&db));
    assert_eq!(restored.len(), 499);
    restored.commit(1, vec![put("later", "write")]).unwrap();
    restored.close().unwrap();
    assert!(
        restore_snapshot_file(&fs, &path, &dir).unwrap().is_none(),
        "same snapshot: keep the data"
    );
    let restored = Db::open(o).unwrap();
    assert_eq!(get_str(&restored, "later").as_deref(), Some("write"));
    let other = Path::new(SIM_ROOT).join("other.vsnap");
    write_snapshot_file(&fs, &other, &restored.snapshot(), 2).unwrap();
    assert!(
        restore_snapshot_file(&fs, &other, &dir).is_err(),
        "another snapshot into a non-empty dir"
    );
    let _ = Arc::new(fs.list_dir(Path::new(SIM_ROOT)));
}
