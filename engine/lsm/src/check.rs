//! `velocity-engine check [--repair]`: explain what is wrong with a storage directory.
//!
//! Run on a stopped engine. Checks the manifest and every block of every table it
//! names (damage there is not repairable: restore from a snapshot), then reads every
//! WAL segment the way start-up does and reports each problem with file, offset and
//! whether start-up would drop it (a torn tail) or refuse (corruption). `repair`
//! keeps the longest clean prefix of the log: it truncates the damaged segment at
//! the first bad record and deletes newer segments, because a later batch may
//! depend on one inside the damage (MSET atomicity, INCR). Reads versions 1 and 2.

use std::path::Path;
use std::sync::Arc;

use crate::block_cache::BlockCache;
use crate::filenames::{manifest_name, parse, table_name, FileKind};
use crate::fs::{remove_if_exists, FileSystem};
use crate::manifest::read_current;
use crate::sstable_reader::{BloomStats, Table};
use crate::wal_format::FILE_HEADER_SIZE;
use crate::wal_reader::scan_segment;

/// What a check found: one line per finding, and whether start-up would succeed.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Human-readable findings, in order.
    pub lines: Vec<String>,
    /// Start-up would succeed (after the repair, if one was asked for and done).
    pub ok: bool,
}

/// Check `dir` (DATA_DIR/storage); with `repair`, cut the log at the first damage.
pub fn check_dir(fs: &dyn FileSystem, dir: &Path, repair: bool) -> CheckReport {
    let mut r = CheckReport::default();
    let mut say = |s: String| r.lines.push(s);
    let cur = match read_current(fs, dir) {
        Ok(c) => c,
        Err(e) => {
            say(format!(
                "  manifest: CORRUPT: {e} (not repairable here: restore from a snapshot)"
            ));
            say("result: start-up would refuse; see above".into());
            return r;
        }
    };
    let mut log_number = 0;
    match &cur {
        None => say(format!("{}: no manifest yet (no table flushed)", dir.display())),
        Some((n, st)) => {
            log_number = st.log_number;
            say(format!(
                "{}: {} (version {}): {} table(s), WAL replay from segment {}, last_seq {} (epoch {})",
                dir.display(),
                manifest_name(*n),
                st.version,
                st.tables.len(),
                st.log_number,
                st.last_seq,
                st.last_epoch
            ));
            let cache = Arc::new(BlockCache::new(0));
            let bloom = Arc::new(BloomStats::default());
            let mut bad = false;
            for m in &st.tables {
                let path = dir.join(table_name(m.number));
                let res =
                    Table::open(fs, &path, m.number, cache.clone(), bloom.clone()).and_then(|t| Arc::new(t).verify());
                match res {
                    Ok(n) => say(format!(
                        "  {}: ok, tier {}, {n} entries, {} bytes",
                        table_name(m.number),
                        m.tier,
                        m.size
                    )),
                    Err(e) => {
                        say(format!(
                            "  {}: CORRUPT: {e} (not repairable here: restore from a snapshot)",
                            table_name(m.number)
                        ));
                        bad = true;
                    }
                }
            }
            if bad {
                say("result: tables are damaged; start-up or reads would fail".into());
                return r;
            }
        }
    }
    let mut segments: Vec<u64> = fs
        .list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| match parse(n) {
            FileKind::Wal(x) if x >= log_number => Some(x),
            _ => None,
        })
        .collect();
    segments.sort_unstable();
    say(format!("{}: {} WAL segment(s)", dir.display(), segments.len()));
    let mut ok = true;
    for (i, &n) in segments.iter().enumerate() {
        let path = dir.join(crate::filenames::wal_name(n));
        let scan = match scan_segment(fs, &path, n, i + 1 == segments.len()) {
            Ok(s) => s,
            Err(e) => {
                say(format!("  {}: unreadable: {e}", path.display()));
                ok = false;
                break;
            }
        };
        let entries: usize = scan.batches.iter().map(|b| b.entries.len()).sum();
        let name = crate::filenames::wal_name(n);
        let Some((off, why)) = scan.problem.clone() else {
            say(format!(
                "  {name}: ok, version {}, {} records, {entries} entries, {} bytes",
                scan.version,
                scan.batches.len(),
                scan.size
            ));
            continue;
        };
        let verdict = if scan.torn {
            "torn tail (start-up drops it)"
        } else {
            "CORRUPT (start-up refuses)"
        };
        say(format!(
            "  {name}: {verdict} at offset {off}: {why}; {} bytes from there, {} good records before it",
            scan.dropped_bytes(),
            scan.batches.len()
        ));
        if scan.torn {
            continue;
        }
        let later = &segments[i + 1..];
        if !repair {
            ok = false;
            say(format!(
                "  --repair would truncate {name} at {off} and delete {} newer segment(s)",
                later.len()
            ));
            break;
        }
        let res = (|| -> std::io::Result<()> {
            if scan.valid_end < FILE_HEADER_SIZE as u64 {
                remove_if_exists(fs, &path)?;
            } else {
                let f = fs.open_append(&path)?;
                f.truncate(scan.valid_end)?;
                f.sync_all()?;
            }
            for &m in later {
                remove_if_exists(fs, &dir.join(crate::filenames::wal_name(m)))?;
            }
            fs.sync_dir(dir)
        })();
        match res {
            Ok(()) => say(format!(
                "  repair: truncated {name} to {} bytes, deleted {} newer segment(s)",
                scan.valid_end,
                later.len()
            )),
            Err(e) => {
                say(format!("  repair failed: {e}"));
                ok = false;
            }
        }
        break;
    }
    say(format!(
        "result: {}",
        if ok { "ok" } else { "start-up would refuse; see above" }
    ));
    r.ok = ok;
    r
}
