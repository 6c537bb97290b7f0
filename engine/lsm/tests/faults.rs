//! Fail-stop on fsync and write errors, the full-disk cycle, torn writes, and a
//! failing flush, through the injectable file layer.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use velocity_lsm::testing::{CrashMode, Fault, OpKind, SimFs};
use velocity_lsm::{Db, Error, FsyncPolicy};

fn is_wal(op: &velocity_lsm::testing::Op) -> bool {
    op.path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("wal-"))
}

#[test]
fn a_failed_fsync_is_final_and_never_reported_as_durable() {
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(sim_opts(&fs)).unwrap();
    let c1 = db.commit(1, vec![put("a", "1")]).unwrap();
    c1.wait().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let a2 = armed.clone();
    fs.set_fault(move |op| {
        (op.kind == OpKind::Sync && is_wal(op) && a2.load(Ordering::SeqCst)).then_some(Fault::Fail(libc::EIO))
    });
    let c2 = db.commit(1, vec![put("b", "2")]).unwrap();
    assert!(matches!(c2.wait(), Err(Error::WritesRefused(_))));
    assert!(!c2.is_durable());
    assert!(matches!(block_on(c2.durable()), Err(Error::WritesRefused(_))));
    assert_eq!(db.durable_seq(), 1);
    // The fault is gone, but a failed fsync is never retried as if it had worked.
    armed.store(false, Ordering::SeqCst);
    assert!(matches!(
        db.commit(1, vec![put("c", "3")]),
        Err(Error::WritesRefused(_))
    ));
    assert!(db.write_error().unwrap().contains("fdatasync"));
    assert!(db.stats().writes_refused);
    assert_eq!(get_str(&db, "a").as_deref(), Some("1"), "reads keep working");
    assert_eq!(db.durable_seq(), 1);
    assert!(
        db.close().is_err(),
        "close reports that pending writes could not be made durable"
    );
    // A restart reads back whatever reached the disk.
    fs.clear_fault();
    let after = fs.crash(CrashMode::SyncedOnly);
    let mut o = sim_opts(&after);
    o.fs = Arc::new(after.clone());
    let db = Db::open(o).unwrap();
    assert_eq!(get_str(&db, "a").as_deref(), Some("1"));
    assert_eq!(db.last_seq().1, 1);
}

#[test]
fn a_write_error_is_final_and_nothing_of_the_batch_is_applied() {
    let fs = SimFs::new(SIM_ROOT);
    let mut o = sim_opts(&fs);
    o.fsync = FsyncPolicy::Everysec;
    let db = Db::open(o).unwrap();
    db.commit(1, vec![put("a", "1")]).unwrap();
    fs.set_fault(|op| {
        (op.kind == OpKind::Append && is_wal(op)).then_some(Fault::Torn {
            keep: 7,
            errno: libc::EIO,
        })
    });
    assert!(matches!(
        db.commit(1, vec![put("b", "2")]),
        Err(Error::WritesRefused(_))
    ));
    assert_eq!(get_str(&db, "b"), None, "a failed append is not applied");
    assert_eq!(db.last_seq(), (1, 1));
    fs.clear_fault();
    assert!(matches!(
        db.commit(1, vec![put("c", "3")]),
        Err(Error::WritesRefused(_))
    ));
    drop(db);
    // The process restarts: the 7 torn bytes are a torn tail.
    let db = Db::open(sim_opts(&fs)).unwrap();
    assert_eq!(db.recovery().torn_bytes, 7);
    assert_eq!(dump(&db), vec![("a".to_string(), "1".to_string())]);
}

#[test]
fn a_full_disk_refuses_writes_until_space_returns_and_loses_nothing() {
    let fs = SimFs::new(SIM_ROOT);
    let mut o = sim_opts(&fs);
    o.memtable_bytes = 1 << 20;
    let db = Db::open(o.clone()).unwrap();
    db.commit(1, vec![put("a", "1")]).unwrap().wait().unwrap();
    fs.set_free_bytes(Some(10));
    let e = db.commit(1, vec![put("b", &"x".repeat(100))]).unwrap_err();
    assert!(
        matches!(e, Error::WritesRefused(ref m) if m.contains("No space")),
        "{e}"
    );
    assert!(db.stats().writes_refused);
    assert_eq!(get_str(&db, "b"), None);
    assert!(
        db.commit(1, vec![put("c", "3")]).is_err(),
        "still refused while the disk is full"
    );
    fs.set_free_bytes(None);
    std::thread::sleep(Duration::from_millis(1100));
    let c = db.commit(1, vec![put("d", "4")]).unwrap();
    assert_eq!(c.seq, 2, "the refused batches never took a sequence number");
    c.wait().unwrap();
    assert!(!db.stats().writes_refused);
    db.close().unwrap();
    let db = Db::open(o).unwrap();
    assert_eq!(
        db.recovery().torn_bytes,
        0,
        "the partial record was truncated before appending resumed"
    );
    assert_eq!(dump(&db), vec![("a".into(), "1".into()), ("d".into(), "4".into())]);
}

#[test]
fn a_failing_flush_keeps_the_data_in_the_wal_and_retries() {
    let fs = SimFs::new(SIM_ROOT);
    let mut o = sim_opts(&fs);
    o.memtable_bytes = 1 << 20;
    let db = Db::open(o.clone()).unwrap();
    db.commit(1, vec![put("a", "1")]).unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let a2 = armed.clone();
    fs.set_fault(move |op| {
        let table = op.path.to_string_lossy().contains("table-");
        (table && op.kind == OpKind::Append && a2.load(Ordering::SeqCst)).then_some(Fault::Fail(libc::ENOSPC))
    });
    let e = db.flush().unwrap_err();
    assert!(e.to_string().contains("flush failed"), "{e}");
    assert!(db.stats().background_error.contains("No space"));
    assert_eq!(
        get_str(&db, "a").as_deref(),
        Some("1"),
        "still served from the frozen memtable"
    );
    db.commit(1, vec![put("b", "2")]).unwrap().wait().unwrap();
    armed.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200)); // the flush thread retries once a second
    db.flush().unwrap();
    let flusher = db;
    assert_eq!(flusher.stats().sstables, 2);
    drop(flusher);
    let db = Db::open(o).unwrap();
    assert_eq!(dump(&db), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
}

#[test]
fn a_failing_segment_rotation_stops_writes() {
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(sim_opts(&fs)).unwrap();
    db.commit(1, vec![put("a", "1")]).unwrap();
    fs.set_fault(|op| (op.kind == OpKind::Open && is_wal(op)).then_some(Fault::Fail(libc::EIO)));
    let c = db.commit(1, vec![put("big", &"x".repeat(5000))]).unwrap(); // fills the memtable: rotation fails
    assert!(c.wait().is_err() || db.write_error().is_some());
    assert!(matches!(
        db.commit(1, vec![put("c", "3")]),
        Err(Error::WritesRefused(_))
    ));
    assert_eq!(get_str(&db, "big").map(|v| v.len()), Some(5000));
}
