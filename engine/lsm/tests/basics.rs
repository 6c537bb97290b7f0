//! Commit, read, scan, reopen; flush, compaction and the table read path; TTL bookkeeping.

mod common;

use bytes::Bytes;
use common::*;
use velocity_lsm::testing::SimFs;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

#[test]
fn commit_get_scan_and_reopen_on_a_real_disk() {
    let dir = TempDir::new("basics");
    let mut opts = Options::new(dir.path().join("storage"));
    opts.fsync = FsyncPolicy::Always;
    let db = Db::open(opts.clone()).unwrap();
    assert_eq!(db.last_seq(), (0, 0));
    let c = db.commit(1, vec![put("a", "1"), put("b", "2"), put("c", "3")]).unwrap();
    assert_eq!(c.seq, 1);
    c.wait().unwrap();
    assert!(c.is_durable());
    assert!(db.durable_seq() >= 1);
    let c2 = db.commit(1, vec![del("b"), put("a", "one")]).unwrap();
    assert_eq!(c2.seq, 2);
    assert_eq!(get_str(&db, "a").as_deref(), Some("one"));
    assert_eq!(get_str(&db, "b"), None);
    assert_eq!(dump(&db), vec![("a".into(), "one".into()), ("c".into(), "3".into())]);
    assert_eq!(db.scan_from(b"b", 1).unwrap().len(), 1);
    assert_eq!(db.len(), 2);
    db.close().unwrap();

    let db = Db::open(opts).unwrap();
    assert_eq!(db.last_seq(), (1, 2));
    assert_eq!(db.durable_seq(), 2);
    assert_eq!(dump(&db), vec![("a".into(), "one".into()), ("c".into(), "3".into())]);
    assert_eq!(db.len(), 2);
    assert_eq!(db.recovery().batches, 2);
    assert_eq!(db.commit(2, vec![put("d", "4")]).unwrap().seq, 3);
    let second = Db::open(Options::new(dir.path().join("storage"))).unwrap_err();
    assert!(second.to_string().contains("in use by another engine"), "{second}");
    assert!(matches!(
        db.commit(1, vec![put("e", "5")]),
        Err(velocity_lsm::Error::InvalidArgument(_))
    ));
}

#[test]
fn flushes_and_compactions_keep_every_key_and_drop_dead_ones() {
    let fs = SimFs::new(SIM_ROOT);
    let mut opts = sim_opts(&fs);
    opts.fsync = FsyncPolicy::No;
    let db = Db::open(opts.clone()).unwrap();
    for round in 0..20 {
        let batch = (0..50)
            .map(|i| put(&format!("key:{i:03}"), &format!("r{round}:{}", "x".repeat(40))))
            .collect();
        db.commit(1, batch).unwrap();
    }
    for i in 0..20 {
        db.commit(1, vec![del(&format!("key:{:03}", i * 2))]).unwrap();
    }
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    let st = db.stats();
    assert!(st.flushes >= 4, "{st:?}");
    assert!(st.compactions >= 1, "{st:?}");
    assert_eq!(st.live_keys, 30);
    let rows = dump(&db);
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|(_, v)| v.starts_with("r19:")));
    assert_eq!(get_str(&db, "key:002"), None);
    assert_eq!(get_str(&db, "key:041").unwrap()[..4], *"r19:");
    let st = db.stats();
    assert!(st.bloom_negative + st.bloom_maybe > 0, "{st:?}");
    db.close().unwrap();
    let db = Db::open(opts).unwrap();
    assert_eq!(dump(&db), rows);
    assert_eq!(db.len(), 30);
    assert_eq!(db.last_seq(), (1, 40));
}

#[test]
fn expired_values_stay_readable_until_a_compaction_drops_them() {
    let fs = SimFs::new(SIM_ROOT);
    let mut opts = sim_opts(&fs);
    opts.fsync = FsyncPolicy::No;
    opts.clock = std::sync::Arc::new(|| 10_000);
    let db = Db::open(opts).unwrap();
    let rec = |at| Record {
        kind: 1,
        value: Bytes::from_static(b"v"),
        expire_at_ms: at,
    };
    db.commit(
        1,
        vec![Mutation::put("gone", rec(5_000)), Mutation::put("later", rec(50_000))],
    )
    .unwrap();
    assert_eq!(
        db.get(b"gone").unwrap().unwrap().expire_at_ms,
        5_000,
        "storage returns expired records"
    );
    let mut sample = db.expiring_sample(10);
    sample.sort();
    assert_eq!(
        sample,
        vec![
            (Bytes::from_static(b"gone"), 5_000),
            (Bytes::from_static(b"later"), 50_000)
        ]
    );
    for i in 0..4 {
        db.commit(1, vec![put(&format!("filler{i}"), &"f".repeat(5000))])
            .unwrap();
        db.flush().unwrap();
    }
    db.wait_for_compactions().unwrap();
    assert!(db.stats().compactions >= 1);
    assert_eq!(
        db.get(b"gone").unwrap(),
        None,
        "dropped by the compaction that included the oldest table"
    );
    assert!(db.get(b"later").unwrap().is_some());
    assert_eq!(db.len(), 5);
}

#[test]
fn many_readers_while_one_writer_commits() {
    let fs = SimFs::new(SIM_ROOT);
    let mut opts = sim_opts(&fs);
    opts.fsync = FsyncPolicy::No;
    let db = std::sync::Arc::new(Db::open(opts).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // An MSET writes both keys with the same value: a reader never sees them differ.
                    let s = db.snapshot();
                    let a = s.get(b"pair:a").unwrap().map(|r| r.value);
                    let b = s.get(b"pair:b").unwrap().map(|r| r.value);
                    assert_eq!(a, b, "a batch is atomic to readers");
                    let rows = db.scan_from(b"pair:", 2).unwrap();
                    if rows.len() == 2 {
                        assert_eq!(rows[0].1.value, rows[1].1.value);
                    }
                }
            })
        })
        .collect();
    for i in 0..2000 {
        let v = format!("{i}");
        db.commit(1, vec![put("pair:a", &v), put("pair:b", &v)]).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(get_str(&db, "pair:a").as_deref(), Some("1999"));
}

#[test]
fn commit_many_takes_consecutive_sequences_in_one_write() {
    use velocity_lsm::testing::{Fault, OpKind};
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(sim_opts(&fs)).unwrap();
    db.commit(1, vec![put("a", "0")]).unwrap();
    let before = fs.op_count();
    let cs = db
        .commit_many(
            1,
            vec![vec![put("a", "1")], vec![put("b", "2"), del("a")], vec![put("c", "3")]],
        )
        .unwrap();
    assert_eq!(cs.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    cs.last().unwrap().wait().unwrap();
    assert!(cs.iter().all(|c| c.is_durable()));
    assert!(fs.op_count() - before <= 3, "one append (and its syncs)");
    assert_eq!(dump(&db), vec![("b".into(), "2".into()), ("c".into(), "3".into())]);
    let raws: Vec<Bytes> = db.batches_since(1).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(raws.len(), 3);
    assert_eq!(velocity_lsm::batch::header(&raws[1]), Some((1, 3)));
    fs.set_free_bytes(Some(5));
    assert!(db
        .commit_many(1, vec![vec![put("d", "4")], vec![put("e", "5")]])
        .is_err());
    assert_eq!(get_str(&db, "d"), None, "nothing of a failed commit_many is applied");
    assert_eq!(db.last_seq(), (1, 4));
    let _ = (Fault::Fail(0), OpKind::Sync);
}

/// The key count takes "did the key exist" from the memtable insert itself (one skiplist
/// search per entry); a batch that writes a key twice replaces its own version and must
/// still count right, live and after replay.
#[test]
fn a_batch_writing_a_key_twice_keeps_the_key_count() {
    let fs = SimFs::new(SIM_ROOT);
    let opts = || {
        let mut o = sim_opts(&fs);
        o.fsync = FsyncPolicy::No;
        o
    };
    let db = Db::open(opts()).unwrap();
    db.commit(1, vec![put("a", "1"), del("a")]).unwrap();
    assert_eq!(db.len(), 0);
    db.commit(1, vec![del("b"), put("b", "2"), put("b", "3")]).unwrap();
    assert_eq!(db.len(), 1);
    db.commit(1, vec![put("c", "1"), put("c", "2"), del("b")]).unwrap();
    assert_eq!(db.len(), 1);
    db.flush().unwrap();
    db.commit(1, vec![del("c"), put("c", "3"), put("d", "4"), del("d")])
        .unwrap();
    assert_eq!(db.len(), 1);
    db.commit(1, vec![put("b", "5")]).unwrap();
    assert_eq!(db.len(), 2);
    db.close().unwrap();
    let db = Db::open(opts()).unwrap();
    assert_eq!(db.len(), 2);
    assert_eq!(dump(&db), vec![("b".into(), "5".into()), ("c".into(), "3".into())]);
}

/// New keys reach the memtable unsorted (memtable.rs) and are ordered by the first
/// SCAN that needs them, or by the flush: a scan sees every key committed before
/// it, in order, while the writer adds keys in random order; flushes (of memtables
/// that were scanned and of ones that were not) and a reopen keep every key once.
#[test]
fn scans_and_flushes_order_keys_that_arrived_unsorted() {
    let fs = SimFs::new(SIM_ROOT);
    let mut opts = sim_opts(&fs);
    opts.fsync = FsyncPolicy::No;
    opts.memtable_bytes = 64 * 1024;
    let db = std::sync::Arc::new(Db::open(opts.clone()).unwrap());
    let key = |i: u64| format!("k{:08}", i.wrapping_mul(2_654_435_761) % 100_000_000);
    const N: u64 = 3000;
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let scanner = {
        let (db, committed) = (db.clone(), committed.clone());
        std::thread::spawn(move || {
            let mut scans = 0;
            while committed.load(std::sync::atomic::Ordering::Acquire) < N {
                let before = committed.load(std::sync::atomic::Ordering::Acquire);
                let rows = db.scan_from(b"", usize::MAX).unwrap();
                assert!(rows.len() as u64 >= before, "a scan misses a committed key");
                assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "keys out of order or twice");
                scans += 1;
            }
            scans
        })
    };
    for i in 1..=N {
        db.commit(1, vec![put(&key(i), &i.to_string())]).unwrap();
        committed.store(i, std::sync::atomic::Ordering::Release);
        if i % 700 == 0 {
            db.flush().unwrap();
        }
    }
    assert!(scanner.join().unwrap() > 0);
    let mut want: Vec<(String, String)> = (1..=N).map(|i| (key(i), i.to_string())).collect();
    want.sort();
    assert_eq!(dump(&db), want);
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    assert_eq!(dump(&db), want);
    drop(db);
    let db = Db::open(opts).unwrap();
    assert_eq!(dump(&db), want);
    assert_eq!(db.len(), N);
}
