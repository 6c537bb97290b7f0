//! Group commit under `always` on the real disk: one fdatasync covers every batch appended
//! while the previous one ran; durability is awaited without blocking (futures) or blocking.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use velocity_lsm::{Db, FsyncPolicy, Options};

#[test]
fn concurrent_committers_share_fsyncs_and_all_become_durable() {
    let tmp = TempDir::new("group");
    let mut o = Options::new(tmp.path().join("storage"));
    o.fsync = FsyncPolicy::Always;
    let db = Arc::new(Db::open(o.clone()).unwrap());
    let threads = 8;
    let per = 150;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let c = db.commit(1, vec![put(&format!("t{t}:{i}"), "v")]).unwrap();
                    if i % 2 == 0 {
                        c.wait().unwrap();
                    } else {
                        block_on(c.durable()).unwrap();
                    }
                    assert!(c.is_durable());
                    assert!(db.durable_seq() >= c.seq);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = t0.elapsed();
    let st = db.stats();
    let commits = (threads * per) as u64;
    assert_eq!(st.last_seq, commits);
    assert_eq!(st.durable_seq, commits);
    eprintln!(
        "{commits} commits from {threads} threads in {elapsed:?}: {} fdatasyncs ({:.1} commits per sync)",
        st.fsyncs,
        commits as f64 / st.fsyncs as f64
    );
    assert!(
        st.fsyncs < commits,
        "group commit: {} fsyncs for {commits} commits",
        st.fsyncs
    );
    drop(db);
    let db = Db::open(o).unwrap();
    assert_eq!(db.len(), commits);
}

#[test]
fn everysec_and_no_are_acknowledgeable_at_once_and_synced_later() {
    let tmp = TempDir::new("everysec");
    let mut o = Options::new(tmp.path().join("storage"));
    o.fsync = FsyncPolicy::Everysec;
    o.everysec_interval = std::time::Duration::from_millis(100);
    let db = Db::open(o).unwrap();
    let c = db.commit(1, vec![put("a", "1")]).unwrap();
    assert!(c.is_durable(), "acknowledgeable at once under everysec");
    block_on(db.wait_synced(c.seq)).unwrap();
    assert!(db.durable_seq() >= 1);
    assert!(db.stats().fsyncs >= 1);
    db.set_fsync(FsyncPolicy::No);
    let c = db.commit(1, vec![put("b", "2")]).unwrap();
    assert!(c.is_durable());
    assert_eq!(db.sync().unwrap(), 2);
    assert_eq!(db.durable_seq(), 2);
    db.set_fsync(FsyncPolicy::Always);
    let c = db.commit(1, vec![put("c", "3")]).unwrap();
    c.wait().unwrap();
    assert_eq!(db.stats().appendfsync, "always");
}
