//! Restart time of velocity-lsm with ~1 GiB: from tables, and by WAL replay (issue 13
//! targets: <= 2 s from tables, >= 300 MB/s of replay). Numbers go to docs/benchmarks.md.
//!
//! ```sh
//! CARGO_TARGET_DIR=... cargo run --release -p velocity-lsm --example restart_bench -- \
//!     DIR tables|replay|reopen GIB VALUE_BYTES REPEATS
//! ```
//!
//! `reopen` skips the writing and times the store already in DIR (under `perf record`,
//! only recovery is sampled); with `VLSM_KEEP=1` in the environment the store is left
//! in DIR at the end.
//!
//! The store is written once (16 keys per batch, keys `user:%012d`, no fsync), closed,
//! then reopened REPEATS times, each reopen timed twice: with the files in the page
//! cache (warm), and after `posix_fadvise(DONTNEED)` of every file of the directory
//! (cold: only this store's pages are dropped, the rest of the machine is left alone;
//! a disk read-ahead cache below the VM may still answer). `replay` keeps everything
//! in the WAL (memtable bound above the data); `tables` flushes and compacts first.

mod support;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use support::{cpu_seconds, median};
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

fn opts(dir: &Path, replay: bool) -> Options {
    let mut o = Options::new(dir);
    o.fsync = FsyncPolicy::No;
    o.compaction_rate_bytes = 0;
    if replay {
        o.memtable_bytes = 64 << 30; // everything stays in the WAL
    }
    o
}

fn fill(db: &Db, bytes: u64, value_len: usize) -> u64 {
    let value = Bytes::from(vec![b'x'; value_len]);
    let per_batch = 16;
    // Per entry in the log: the value, the key (17 bytes) and the entry head (~15 bytes).
    let n = bytes / (value_len as u64 + 32);
    let mut i = 0;
    while i < n {
        let batch = (0..per_batch)
            .map(|j| Mutation::put(format!("user:{:012}", i + j), Record::new(0, value.clone())))
            .collect();
        db.commit(1, batch).expect("commit");
        i += per_batch;
    }
    i
}

fn dir_bytes(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .expect("listing the store")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Drop this directory's files from the page cache (they are all synced: close did it).
#[allow(unsafe_code)]
fn drop_cache(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("listing the store").flatten() {
        let Ok(f) = std::fs::File::open(e.path()) else { continue };
        let _ = f.sync_all();
        // SAFETY: a valid open descriptor; posix_fadvise takes no pointers.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/vlsm-restart".into()));
    let what = args.next().unwrap_or_else(|| "replay".into());
    let gib: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let value_len: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let reuse = what == "reopen";
    let replay = what != "tables";
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let o = opts(&dir, replay);
    let db = Db::open(o.clone()).expect("open");
    let t0 = Instant::now();
    let keys = if reuse {
        db.len()
    } else {
        fill(&db, (gib * (1u64 << 30) as f64) as u64, value_len)
    };
    if !replay {
        db.flush().expect("flush");
        db.wait_for_compactions().expect("compactions");
    }
    let load = t0.elapsed().as_secs_f64();
    db.close().expect("close");
    let wal = dir_bytes(&dir, "wal-");
    let tables = dir_bytes(&dir, "table-");
    println!(
        "{what}: {keys} keys x {value_len} B written in {load:.1} s; WAL {:.1} MiB, tables {:.1} MiB; loadavg {}",
        wal as f64 / 1048576.0,
        tables as f64 / 1048576.0,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    let mut cpus = Vec::new();
    for r in 0..repeats {
        for is_cold in [true, false] {
            if is_cold {
                drop_cache(&dir);
            }
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let db = Db::open(o.clone()).expect("reopen");
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - c0;
            assert_eq!(db.len(), keys, "every key is back");
            let info = db.recovery();
            println!(
                "  run {r} {}: open {secs:.3} s, CPU {cpu:.3} s ({} batches replayed{}); loadavg {}",
                if is_cold { "cold" } else { "warm" },
                info.batches,
                if replay {
                    format!(", {:.0} MB/s", wal as f64 / 1e6 / secs)
                } else {
                    String::new()
                },
                std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
            );
            if is_cold { &mut cold } else { &mut warm }.push(secs);
            cpus.push(cpu);
            db.close().expect("close");
        }
    }
    let (c, w) = (median(cold), median(warm));
    println!("median CPU of an open: {:.3} s", median(cpus));
    if replay {
        println!(
            "median: cold {c:.3} s = {:.0} MB/s, warm {w:.3} s = {:.0} MB/s ({:.0} MB of WAL)",
            wal as f64 / 1e6 / c,
            wal as f64 / 1e6 / w,
            wal as f64 / 1e6
        );
    } else {
        println!("median: cold {c:.3} s, warm {w:.3} s");
    }
    if std::env::var_os("VLSM_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
