//! Velocity's storage engine: one sequenced commit log, a memtable, SSTables with
//! bloom filters and a bounded block cache, tiered compaction on its own thread,
//! consistent snapshots, and recovery that reads what the Python engine wrote.
//!
//! # The contract
//!
//! ```no_run
//! use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};
//!
//! let mut opts = Options::new("/var/lib/velocity/storage");
//! opts.fsync = FsyncPolicy::Always;
//! let db = Db::open(opts)?;                                   // recovery (v1 dirs migrate)
//! let c = db.commit(1, vec![Mutation::put("k", Record::new(1, "v"))])?;
//! c.wait()?;                                                   // or `c.durable().await` in tokio
//! assert_eq!(db.get(b"k")?.unwrap().value, "v");
//! for raw in db.batches_since(0)? { let _bytes = raw?; }       // the replication feed
//! db.close()?;
//! # Ok::<(), velocity_lsm::Error>(())
//! ```
//!
//! - **[`Db`]** is `Send + Sync`. Reads ([`Db::get`], [`Db::scan_from`],
//!   [`Db::snapshot`]) run from any number of threads without blocking each other
//!   or commits. Commits ([`Db::commit`], [`Db::apply_replicated`]) are serialized
//!   inside: each takes the next sequence number, is encoded once
//!   ([`batch`]: `epoch:u64 seq:u64 count:u32 entry*`), appended to the WAL with
//!   one `write()`, inserted in the memtable and published; a reader never sees
//!   part of a batch. On error nothing was applied. [`Db::commit_many`] commits
//!   several batches (consecutive sequences) with one `write()`. One process per
//!   directory (`flock` on `LOCK`).
//! - **Durability** is per [`Commit`]: under [`FsyncPolicy::Always`] a commit may
//!   be acknowledged once an fdatasync covered it (group commit: a dedicated
//!   thread syncs whatever was appended while the previous sync ran; wait with
//!   [`Commit::durable`] from async code or [`Commit::wait`]); under `Everysec`
//!   and `No` at once. [`Db::durable_seq`] is what an fdatasync really covered.
//!   A failed fdatasync or write is final (fail-stop): every waiting and later
//!   commit gets [`Error::WritesRefused`] and no durability is ever reported for
//!   what was not synced. A full disk refuses writes until 4 MiB are free again.
//! - **One log for replication**: [`Db::batches_since`] yields the raw batches
//!   the WAL holds (from an in-memory backlog of `Options::backlog_bytes`, filled
//!   at start-up from the replayed log); a replica passes them to
//!   [`Db::apply_replicated`], which logs the same bytes. [`Db::last_seq`] is the
//!   log position (epoch, seq); it is also in the manifest. A replica that cannot
//!   resume installs a full copy with [`Db::install_copy`] (atomic switch).
//! - **Expiry** stays with the caller: records carry `expire_at_ms` and are
//!   returned expired or not; only compaction drops expired values, as the Python
//!   engine did. [`Db::expiring_sample`] feeds the caller's active expiry cycle.
//! - **Files** go through [`fs::FileSystem`] ([`fs::RealFs`]; tests use
//!   [`testing::SimFs`] for fault injection and power cuts). Every publication is
//!   write-temp, fsync, rename, fsync-directory. With the feature `io-uring`,
//!   `fs_uring::UringSyncFs` syncs the WAL through io_uring instead (opt-in; measured
//!   in docs/benchmarks.md, "Native storage": not faster here).
//!
//! - **Tools**: [`snapshot_file`] writes, reads and restores snapshot files
//!   (`velocityctl snapshot`, `--restore-from`); [`check::check_dir`] is
//!   `velocity-engine check [--repair]`.
//!
//! Formats: docs/formats/wal.md (version 2 here, version 1 read), manifest.md
//! (version 2), sstable.md (version 1, unchanged). Design and numbers:
//! docs/storage.md, "The native engine".

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod background;
mod backlog;
pub mod batch;
mod block_cache;
pub mod bloom;
pub mod check;
mod compaction;
mod db;
mod durability;
pub mod entry_codec;
mod error;
pub mod filenames;
pub mod fs;
#[cfg(feature = "io-uring")]
pub mod fs_uring;
pub mod manifest;
mod memtable;
mod merge;
mod options;
mod rate_limiter;
mod record;
mod recovery;
mod snapshot;
pub mod snapshot_file;
pub mod sstable_builder;
pub mod sstable_format;
pub mod sstable_reader;
mod stats;
pub mod testing;
pub mod wal_format;
pub mod wal_reader;
mod wal_writer;

pub use backlog::BatchIter;
pub use block_cache::BlockCache;
pub use db::{Commit, Db, MAX_IMMUTABLE};
pub use durability::DurableFuture;
pub use error::{Error, Result};
pub use options::{system_clock, Clock, FsyncPolicy, Options};
pub use record::{Mutation, MutationRef, PutRef, Record};
pub use recovery::{LegacyPosition, RecoveryInfo, LEGACY_POSITION_KEY};
pub use snapshot::Snapshot;
pub use stats::{Stats, COMPACTION_BUCKETS};
pub use wal_writer::FSYNC_BUCKETS;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn db_and_snapshot_are_send_and_sync() {
        assert_send_sync::<super::Db>();
        assert_send_sync::<super::Snapshot>();
        assert_send_sync::<super::Commit>();
    }
}
