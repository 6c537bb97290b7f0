//! Every file-naming rule of the storage directory, in one place.
//!
//! ```text
//! DIR/                        (DATA_DIR/storage for the server)
//!     CURRENT                 name of the live manifest
//!     LOCK                    flock'ed by the process that has the directory open
//!     MANIFEST-000007         the table set and the log position (manifest.rs)
//!     wal-000012.log          write-ahead log segments (wal_format.rs)
//!     table-000010.sst        SSTables (sstable_builder.rs)
//!     .NAME.tmp-PID           a publication in progress (removed at start-up)
//! ```
//! Numbers come from one counter (the manifest's next_file): never reused.

/// Name of the file naming the live manifest.
pub const CURRENT: &str = "CURRENT";
/// Held locked (flock) by the process that has the directory open.
pub const LOCK: &str = "LOCK";

/// `wal-NNNNNN.log`.
pub fn wal_name(n: u64) -> String {
    format!("wal-{n:06}.log")
}

/// `table-NNNNNN.sst`.
pub fn table_name(n: u64) -> String {
    format!("table-{n:06}.sst")
}

/// `MANIFEST-NNNNNN`.
pub fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}

fn number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A WAL segment.
    Wal(u64),
    /// A table.
    Table(u64),
    /// A manifest.
    Manifest(u64),
    /// A leftover temporary file.
    Temp,
    /// CURRENT.
    Current,
    /// Anything else (left alone).
    Other,
}

/// Classify a name.
pub fn parse(name: &str) -> FileKind {
    if let Some(n) = number(name, "wal-", ".log") {
        FileKind::Wal(n)
    } else if let Some(n) = number(name, "table-", ".sst") {
        FileKind::Table(n)
    } else if let Some(n) = number(name, "MANIFEST-", "") {
        FileKind::Manifest(n)
    } else if name == CURRENT {
        FileKind::Current
    } else if name.starts_with('.') && name.contains(".tmp-") {
        FileKind::Temp
    } else {
        FileKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse(&wal_name(12)), FileKind::Wal(12));
        assert_eq!(parse(&table_name(1_234_567)), FileKind::Table(1_234_567));
        assert_eq!(parse(&manifest_name(7)), FileKind::Manifest(7));
        assert_eq!(parse(".CURRENT.tmp-42"), FileKind::Temp);
        assert_eq!(parse("wal-12.log"), FileKind::Other);
        assert_eq!(parse("snapshots"), FileKind::Other);
    }
}
