//! Options of a database, with the defaults of `velocity-engine`'s settings.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::fs::{FileSystem, RealFs};

/// When the WAL is synced (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// A commit is acknowledgeable after an fdatasync covering it (group commit).
    Always,
    /// A background thread syncs once a second; commits are acknowledgeable after `write()`.
    Everysec,
    /// The OS decides (segments are still synced at rotation and close).
    No,
}

impl FsyncPolicy {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::Everysec),
            "no" => Ok(FsyncPolicy::No),
            other => Err(format!("unknown appendfsync policy {other:?} (always, everysec, no)")),
        }
    }
}

/// Wall clock in Unix milliseconds (compaction's expiry decisions).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// Options of [`crate::Db::open`].
#[derive(Clone)]
pub struct Options {
    /// The storage directory (the server passes `DATA_DIR/storage`); created if missing.
    pub dir: PathBuf,
    /// WAL sync policy (switchable at run time: `Db::set_fsync`).
    pub fsync: FsyncPolicy,
    /// Memtable size that triggers a flush (64 MiB).
    pub memtable_bytes: usize,
    /// Bound on cached SSTable blocks (32 MiB).
    pub block_cache_bytes: usize,
    /// Bytes per second compaction may write (64 MiB/s; 0 = unlimited).
    pub compaction_rate_bytes: u64,
    /// Recent batches kept in memory for `batches_since` (64 MiB).
    pub backlog_bytes: usize,
    /// Period of the `everysec` sync (1 s).
    pub everysec_interval: Duration,
    /// Run compactions (tests turn it off to look at tables).
    pub compaction: bool,
    /// The file layer (tests inject faults through it).
    pub fs: Arc<dyn FileSystem>,
    /// Wall clock for compaction's expiry decisions.
    pub clock: Clock,
}

impl Options {
    /// Defaults for a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            fsync: FsyncPolicy::Everysec,
            memtable_bytes: 64 << 20,
            block_cache_bytes: 32 << 20,
            compaction_rate_bytes: 64 << 20,
            backlog_bytes: 64 << 20,
            everysec_interval: Duration::from_secs(1),
            compaction: true,
            fs: Arc::new(RealFs),
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("dir", &self.dir)
            .field("fsync", &self.fsync)
            .field("memtable_bytes", &self.memtable_bytes)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("compaction_rate_bytes", &self.compaction_rate_bytes)
            .field("backlog_bytes", &self.backlog_bytes)
            .field("everysec_interval", &self.everysec_interval)
            .field("compaction", &self.compaction)
            .finish_non_exhaustive()
    }
}
