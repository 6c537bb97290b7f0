//! Property test: the engine against a BTreeMap model, through commits, multi-key
//! batches, flushes, compactions, snapshots and restarts.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use velocity_lsm::testing::SimFs;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Record};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    Batch(Vec<(u8, Option<u16>)>),
    Flush,
    Compact,
    Reopen,
    Scan(u8, u8),
    SnapshotCheck,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..40, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..40).prop_map(Op::Delete),
        2 => prop::collection::vec((0u8..40, prop::option::of(any::<u16>())), 1..6).prop_map(Op::Batch),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        2 => (0u8..45, 1u8..20).prop_map(|(s, n)| Op::Scan(s, n)),
        1 => Just(Op::SnapshotCheck),
    ]
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("k{k:02}"))
}

fn value(v: u16) -> Record {
    // Sizes vary so memtables fill and blocks split at different points.
    Record::new(1, Bytes::from(format!("{v}:{}", "x".repeat((v % 300) as usize))))
}

fn mutation(k: u8, v: Option<u16>) -> Mutation {
    match v {
        Some(v) => Mutation::put(key(k), value(v)),
        None => Mutation::delete(key(k)),
    }
}

fn open(fs: &SimFs) -> Db {
    let mut o = sim_opts(fs);
    o.fsync = FsyncPolicy::No;
    o.memtable_bytes = 2048;
    Db::open(o).unwrap()
}

fn check_all(db: &Db, model: &BTreeMap<Bytes, Record>) {
    let got: Vec<(Bytes, Record)> = db.scan_from(b"", usize::MAX).unwrap();
    let want: Vec<(Bytes, Record)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(got, want);
    for k in 0..40 {
        assert_eq!(db.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
    }
    assert_eq!(db.len(), model.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap(ops in prop::collection::vec(op(), 1..120)) {
        let fs = SimFs::new(SIM_ROOT);
        let mut db = open(&fs);
        let mut model: BTreeMap<Bytes, Record> = BTreeMap::new();
        let mut seq = 0;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    db.commit(1, vec![mutation(k, Some(v))]).unwrap();
                    model.insert(key(k), value(v));
                    seq += 1;
                }
                Op::Delete(k) => {
                    db.commit(1, vec![mutation(k, None)]).unwrap();
                    model.remove(&key(k));
                    seq += 1;
                }
                Op::Batch(items) => {
                    db.commit(1, items.iter().map(|(k, v)| mutation(*k, *v)).collect()).unwrap();
                    for (k, v) in items {
                        match v {
                            Some(v) => { model.insert(key(k), value(v)); }
                            None => { model.remove(&key(k)); }
                        }
                    }
                    seq += 1;
                }
                Op::Flush => db.flush().unwrap(),
                Op::Compact => db.wait_for_compactions().unwrap(),
                Op::Reopen => {
                    db.close().unwrap();
                    db = open(&fs);
                    prop_assert_eq!(db.last_seq().1, seq);
                }
                Op::Scan(s, n) => {
                    let start = format!("k{s:02}");
                    let got = db.scan_from(start.as_bytes(), n as usize).unwrap();
                    let want: Vec<(Bytes, Record)> = model
                        .range(Bytes::from(start)..)
                        .take(n as usize)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                Op::SnapshotCheck => {
                    let snap = db.snapshot();
                    let frozen = model.clone();
                    db.commit(1, vec![mutation(0, Some(7)), mutation(39, None)]).unwrap();
                    model.insert(key(0), value(7));
                    model.remove(&key(39));
                    seq += 1;
                    db.flush().unwrap();
                    db.wait_for_compactions().unwrap();
                    let got: Vec<(Bytes, Record)> = snap.iter_from(b"").map(|r| r.unwrap()).collect();
                    let want: Vec<(Bytes, Record)> = frozen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(snap.get(&key(0)).unwrap(), frozen.get(&key(0)).cloned());
                }
            }
        }
        check_all(&db, &model);
        db.flush().unwrap();
        db.wait_for_compactions().unwrap();
        check_all(&db, &model);
        let st = db.stats();
        if std::env::var("VELOCITY_MODEL_TRACE").is_ok() {
            eprintln!("flushes {} compactions {} tables {}", st.flushes, st.compactions, st.sstables);
        }
        db.close().unwrap();
        let db = open(&fs);
        check_all(&db, &model);
        prop_assert_eq!(db.last_seq().1, seq);
    }
}
