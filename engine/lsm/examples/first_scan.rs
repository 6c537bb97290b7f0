//! What the first SCAN after many new keys costs (memtable.rs: new keys wait unsorted
//! until an ordered read moves them into the skiplist). Commits N keys new to the
//! memtable under `everysec`, then times three SCAN pages.
//!
//!     cargo run --release -p velocity-lsm --example first_scan -- [N] [DIR]
use std::time::Instant;

use bytes::Bytes;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(300_000, |a| a.parse().expect("N: a number of keys"));
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/vlsm-first-scan".into()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = Options::new(&dir);
    o.fsync = FsyncPolicy::Everysec;
    let db = Db::open(o).unwrap();
    let value = Bytes::from(vec![b'v'; 64]);
    let t = Instant::now();
    for i in 0..u64::from(n) {
        let k = format!("key:{:012}", i.wrapping_mul(2_654_435_761) % 1_000_000_000_000);
        db.commit(1, vec![Mutation::put(Bytes::from(k), Record::new(0, value.clone()))])
            .unwrap();
    }
    println!(
        "{n} commits of new keys: {:?} ({:?} each)",
        t.elapsed(),
        t.elapsed() / n
    );
    for i in 0..3 {
        let t = Instant::now();
        let rows = db.scan_from(b"key:5", 10).unwrap();
        println!("scan {i}: {:?} ({} rows)", t.elapsed(), rows.len());
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
