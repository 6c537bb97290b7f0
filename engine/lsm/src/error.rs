//! Errors as values with kinds (LevelDB's Status, as a Rust enum).

use std::io;
use std::path::PathBuf;

/// Everything the storage engine can report.
///
/// `WritesRefused` is the fail-stop state: once the log could not make a
/// write durable (a failed fdatasync, an I/O error) every later commit gets it;
/// after a full disk it lasts only until space returns (see `docs/formats/wal.md`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes on disk fail a checksum or do not parse; names the file and offset.
    #[error("{path}: corrupt at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Offset of the first bad byte (or of the damaged block/record).
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// An I/O call failed; `context` says which operation on which file.
    #[error("{context}: {source}")]
    Io {
        /// The operation and file.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writes are refused: an earlier write or sync failed (fail-stop), or the disk is full.
    #[error("writes refused: {0}")]
    WritesRefused(String),
    /// A replicated batch does not follow the log: its sequence is not `expected`.
    #[error("stream gap: got batch {got}, expected {expected}")]
    SeqGap {
        /// The sequence the log needs next (last + 1).
        expected: u64,
        /// The sequence the batch carries.
        got: u64,
    },
    /// `batches_since` was asked for batches the backlog no longer holds: a full copy is needed.
    #[error("batch {requested} is no longer in the backlog (oldest held: {oldest}); a full copy is needed")]
    Compacted {
        /// The first batch asked for.
        requested: u64,
        /// The oldest batch still held (`last_seq + 1` when none is).
        oldest: u64,
    },
    /// The caller passed something the engine cannot take (bad batch bytes, an epoch going back, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database was closed.
    #[error("the database is closed")]
    Closed,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corruption(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corruption {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`]: data on disk cannot be trusted (the engine refuses to start).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// `ENOSPC` or `EDQUOT`: the one write failure the log recovers from by itself.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
