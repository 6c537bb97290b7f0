//! `Db` under `always`: the WAL synced by fdatasync (`RealFs`) against io_uring
//! (`UringSyncFs`), same run, interleaved (docs/benchmarks.md, "Native storage").
//!
//! ```sh
//! cargo run --release -p velocity-lsm --features io-uring --example wal_sync_ab -- DIR [SECS] [REPEATS]
//! ```
//! Committers 1, 8 and 50; each commits one key with a 64-byte value and waits for
//! its durability. Reports medians of commits/s, commit latency p50/p99, process
//! CPU per commit and commits per sync; every run reopens the store with `RealFs`
//! and checks that every committed batch is there.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{cpu_seconds, median};
use velocity_lsm::fs::{FileSystem, RealFs};
use velocity_lsm::fs_uring::UringSyncFs;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

struct Cell {
    ops: f64,
    p50: f64,
    p99: f64,
    cpu_us: f64,
    per_sync: f64,
}

fn run(dir: &Path, fs: Arc<dyn FileSystem>, threads: usize, secs: f64) -> Cell {
    let _ = std::fs::remove_dir_all(dir);
    let mut o = Options::new(dir);
    o.fsync = FsyncPolicy::Always;
    o.fs = fs;
    let db = Arc::new(Db::open(o.clone()).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let value = Bytes::from(vec![b'v'; 64]);
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (db, stop, value) = (db.clone(), stop.clone(), value.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = Instant::now();
                    let key = format!("key:{t:03}:{:08}", n % 100_000);
                    let c = db
                        .commit(1, vec![Mutation::put(key, Record::new(0, value.clone()))])
                        .expect("commit");
                    c.wait().expect("durable");
                    lat.push(s.elapsed().as_nanos() as u64);
                    n += 1;
                }
                lat
            })
        })
        .collect();
    // The measured window is a fixed span of wall time.
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u64> = hs.into_iter().flat_map(|h| h.join().expect("committer")).collect();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let n = lat.len() as u64;
    let syncs = db.stats().fsyncs.max(1);
    assert!(db.durable_seq() >= n, "every acknowledged commit is durable");
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().expect("close"),
        Err(_) => panic!("the committers still hold the Db"),
    }
    o.fs = Arc::new(RealFs);
    let db = Db::open(o).expect("reopen");
    assert_eq!(db.recovery().batches, n, "every commit replays");
    drop(db);
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    Cell {
        ops: n as f64 / wall,
        p50: pct(0.5),
        p99: pct(0.99),
        cpu_us: cpu * 1e6 / n as f64,
        per_sync: n as f64 / syncs as f64,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/vlsm-sync-ab".into()));
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let uring: Arc<dyn FileSystem> = Arc::new(UringSyncFs::new().expect("io_uring"));
    let real: Arc<dyn FileSystem> = Arc::new(RealFs);
    let modes = [("fdatasync (RealFs)", real), ("io_uring FSYNC (UringSyncFs)", uring)];
    println!(
        "loadavg at start: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("| committers | WAL sync | commits/s | p50 us | p99 us | CPU us/commit | commits/sync |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for threads in [1usize, 8, 50] {
        let mut cells: Vec<Vec<Cell>> = vec![Vec::new(), Vec::new()];
        for r in 0..repeats {
            for k in 0..2 {
                let i = (k + r) % 2;
                cells[i].push(run(&dir, modes[i].1.clone(), threads, secs));
            }
        }
        for (i, (name, _)) in modes.iter().enumerate() {
            let m = |f: fn(&Cell) -> f64| median(cells[i].iter().map(f).collect());
            println!(
                "| {threads} | {name} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
                m(|c| c.ops),
                m(|c| c.p50),
                m(|c| c.p99),
                m(|c| c.cpu_us),
                m(|c| c.per_sync)
            );
        }
    }
    println!(
        "loadavg at end: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
