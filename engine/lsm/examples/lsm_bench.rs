//! Micro-benchmarks of velocity-lsm on the local disk; numbers go to docs/storage.md.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/.cargo-targets/lsm cargo run --release -p velocity-lsm --example lsm_bench -- DIR [GiB]
//! ```
//! Measures: commit throughput under `always` (1, 8 and 64 committing threads: group
//! commit) and `everysec` (1 thread), 16-byte keys and 64-byte values; WAL replay
//! speed (a log of ~256 MiB reopened); restart time with GiB of data in tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

fn opts(dir: &Path, fsync: FsyncPolicy) -> Options {
    let mut o = Options::new(dir);
    o.fsync = fsync;
    o.compaction_rate_bytes = 0;
    o
}

fn commits(dir: &Path, fsync: FsyncPolicy, threads: usize, dur: Duration) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Arc::new(Db::open(opts(dir, fsync)).unwrap());
    let value = Bytes::from(vec![b'v'; 64]);
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while t0.elapsed() < dur {
                    let key = format!("key:{t:03}:{:08}", n % 100_000);
                    let c = db
                        .commit(1, vec![Mutation::put(key, Record::new(0, value.clone()))])
                        .unwrap();
                    c.wait().unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let n: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = t0.elapsed().as_secs_f64();
    let st = db.stats();
    println!(
        "commit {:>8} threads={threads:>2}: {:>9.0} commits/s, {} fdatasyncs ({:.1} commits/sync, {:.0} us/sync)",
        fsync.as_str(),
        n as f64 / secs,
        st.fsyncs,
        n as f64 / st.fsyncs.max(1) as f64,
        st.fsync_seconds_sum * 1e6 / st.fsyncs.max(1) as f64
    );
}

fn pipelined(dir: &Path, fsync: FsyncPolicy, depth: usize, dur: Duration) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Db::open(opts(dir, fsync)).unwrap();
    let value = Bytes::from(vec![b'v'; 64]);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < dur {
        let batches = (0..depth)
            .map(|j| {
                vec![Mutation::put(
                    format!("key:{:012}", (n + j as u64) % 100_000),
                    Record::new(0, value.clone()),
                )]
            })
            .collect();
        let cs = db.commit_many(1, batches).unwrap();
        cs.last().unwrap().wait().unwrap();
        n += depth as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "commit_many {:>8} depth={depth:>2}: {:>9.0} batches/s ({:.2} us per batch), {} fdatasyncs",
        fsync.as_str(),
        n as f64 / secs,
        secs * 1e6 / n as f64,
        db.stats().fsyncs
    );
}

fn fill(db: &Db, bytes: u64, value_len: usize) -> u64 {
    let value = Bytes::from(vec![b'x'; value_len]);
    let per_batch = 16;
    let n = bytes / (value_len as u64 + 24);
    let mut i = 0;
    while i < n {
        let batch = (0..per_batch)
            .map(|j| Mutation::put(format!("user:{:012}", i + j), Record::new(0, value.clone())))
            .collect();
        db.commit(1, batch).unwrap();
        i += per_batch;
    }
    i
}

fn replay(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let mut o = opts(dir, FsyncPolicy::No);
    o.memtable_bytes = 4 << 30; // everything stays in the WAL
    let db = Db::open(o.clone()).unwrap();
    let keys = fill(&db, 256 << 20, 1000);
    db.close().unwrap();
    let wal: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // Cold-ish: drop the page cache is not possible without root tricks here; report warm.
    let t0 = Instant::now();
    let db = Db::open(o).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(db.len(), keys);
    println!(
        "replay: {:.0} MiB of WAL ({} batches, {keys} keys) in {:.2} s = {:.0} MiB/s",
        wal as f64 / (1 << 20) as f64,
        db.recovery().batches,
        secs,
        wal as f64 / (1 << 20) as f64 / secs
    );
    db.close().unwrap();
}

fn restart(dir: &Path, gib: f64) {
    let _ = std::fs::remove_dir_all(dir);
    let o = opts(dir, FsyncPolicy::No);
    let db = Db::open(o.clone()).unwrap();
    let t0 = Instant::now();
    let keys = fill(&db, (gib * (1u64 << 30) as f64) as u64, 1000);
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    let load = t0.elapsed().as_secs_f64();
    let st = db.stats();
    db.close().unwrap();
    let t0 = Instant::now();
    let db = Db::open(o).unwrap();
    let open = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut found = 0;
    for i in (0..keys).step_by((keys / 10_000).max(1) as usize) {
        found += db.get(format!("user:{i:012}").as_bytes()).unwrap().is_some() as u64;
    }
    let gets = t1.elapsed();
    println!(
        "restart: {keys} keys x 1000 B ({:.2} GiB in {} tables, {} compactions; loaded in {load:.1} s) reopened in {open:.3} s; {found} cold gets in {gets:?}",
        st.sstable_bytes as f64 / (1u64 << 30) as f64,
        st.sstables,
        st.compactions
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/vlsm-bench".into()));
    let gib: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let d = Duration::from_secs(3);
    commits(&base.join("a1"), FsyncPolicy::Always, 1, d);
    commits(&base.join("a8"), FsyncPolicy::Always, 8, d);
    commits(&base.join("a64"), FsyncPolicy::Always, 64, d);
    commits(&base.join("e1"), FsyncPolicy::Everysec, 1, d);
    commits(&base.join("e8"), FsyncPolicy::Everysec, 8, d);
    commits(&base.join("n1"), FsyncPolicy::No, 1, d);
    pipelined(&base.join("p16"), FsyncPolicy::Everysec, 16, d);
    pipelined(&base.join("pa16"), FsyncPolicy::Always, 16, d);
    replay(&base.join("replay"));
    restart(&base.join("restart"), gib);
    let _ = std::fs::remove_dir_all(&base);
}
