//! Snapshot files (docs/formats/snapshot.md, version 1, unchanged): one portable,
//! checksummed file holding every live key at one instant, and restoring one.
//!
//! ```text
//! snapshot := header chunk* end
//! header   := magic "VSNAPSH1" | version:u32 | reserved:u32 | created_ms:i64 | reserved:u64   (32 bytes)
//! chunk    := length:u32 (> 0) | crc:u32 | entries[length]          crc: CRC-32 of the entries
//! end      := zero:u32 | entry_count:u64 | file_crc:u32 | magic "VSNAPEND"
//! file_crc := CRC-32 of every byte before it
//! ```
//! Entries are PUT entries in strictly increasing key order; no tombstones and no
//! values already expired at `created_ms`.

use std::path::Path;

use bytes::Bytes;

use crate::entry_codec::{decode_entry, encode_entry};
use crate::error::{Error, Result};
use crate::filenames::CURRENT;
use crate::fs::{make_dirs, publish, FileSystem};
use crate::manifest::ManifestState;
use crate::record::Record;
use crate::snapshot::{build_copy_tables, Snapshot};

/// Header magic.
pub const MAGIC: &[u8; 8] = b"VSNAPSH1";
/// Trailer magic.
pub const END_MAGIC: &[u8; 8] = b"VSNAPEND";
/// Format version.
pub const VERSION: u32 = 1;
/// Writers close a chunk at about this size.
pub const CHUNK_TARGET: usize = 64 * 1024;
/// Marker naming the snapshot a data directory was restored from.
pub const RESTORED_MARKER: &str = "RESTORED_FROM";

/// What a snapshot file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFileInfo {
    /// File size.
    pub size: u64,
    /// Entries.
    pub entries: u64,
    /// Creation time (Unix ms).
    pub created_ms: i64,
}

/// Write the live, unexpired records of `snap` to `path` (fsync'ed; its directory
/// entry is the caller's to sync if it must survive a crash).
pub fn write_snapshot_file(
    fs: &dyn FileSystem,
    path: &Path,
    snap: &Snapshot,
    created_ms: i64,
) -> Result<SnapshotFileInfo> {
    let ctx = |e| Error::io(format!("writing {}", path.display()), e);
    let f = fs.create(path).map_err(ctx)?;
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    let mut put = |data: &[u8], crc: &mut crc32fast::Hasher| -> Result<()> {
        f.append(data).map_err(ctx)?;
        crc.update(data);
        size += data.len() as u64;
        Ok(())
    };
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&created_ms.to_le_bytes());
    head.extend_from_slice(&0u64.to_le_bytes());
    assert_eq!(head.len(), 32);
    put(&head, &mut crc)?;
    let mut chunk = Vec::with_capacity(CHUNK_TARGET + 1024);
    let mut count = 0u64;
    let mut flush_chunk = |chunk: &mut Vec<u8>, crc: &mut crc32fast::Hasher| -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut h = Vec::with_capacity(8);
        h.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        put(&h, crc)?;
        put(chunk, crc)?;
        chunk.clear();
        Ok(())
    };
    for item in snap.iter_from(b"") {
        let (k, r) = item?;
        if r.is_expired_at(created_ms) {
            continue;
        }
        encode_entry(&mut chunk, &k, Some(&r));
        count += 1;
        if chunk.len() >= CHUNK_TARGET {
            flush_chunk(&mut chunk, &mut crc)?;
        }
    }
    flush_chunk(&mut chunk, &mut crc)?;
    let mut tail = Vec::with_capacity(12);
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&count.to_le_bytes());
    put(&tail, &mut crc)?;
    let mut end = crc.finalize().to_le_bytes().to_vec();
    end.extend_from_slice(END_MAGIC);
    f.append(&end).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    Ok(SnapshotFileInfo {
        size: size + 12,
        entries: count,
        created_ms,
    })
}

fn bad(path: &Path, why: String) -> Error {
    Error::InvalidArgument(format!("{}: {why}", path.display()))
}

/// Read and check a whole snapshot file: every chunk CRC, key order, the count, the
/// magic values and the whole-file CRC. Nothing is returned unless all checks pass.
pub fn read_snapshot_file(fs: &dyn FileSystem, path: &Path) -> Result<(SnapshotFileInfo, Vec<(Bytes, Record)>)> {
    let data = Bytes::from(
        fs.read_all(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
    );
    let n = data.len();
    if n < 32 + 24 {
        return Err(bad(path, "truncated: shorter than a header and a trailer".into()));
    }
    if &data[..8] != MAGIC {
        return Err(bad(path, "not a Velocity snapshot (bad magic)".into()));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != VERSION {
        return Err(bad(
            path,
            format!("snapshot version {version}, this build reads {VERSION}"),
        ));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&data[16..24]);
    let created_ms = i64::from_le_bytes(ts);
    let mut pos = 32;
    let mut out = Vec::new();
    let u32_at = |p: usize| u32::from_le_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]);
    loop {
        if pos + 4 > n {
            return Err(bad(path, format!("truncated in the chunk header at offset {pos}")));
        }
        let len = u32_at(pos) as usize;
        if len == 0 {
            break;
        }
        if pos + 8 + len > n {
            return Err(bad(path, format!("chunk at offset {pos} runs past the end")));
        }
        let body = data.slice(pos + 8..pos + 8 + len);
        if crc32fast::hash(&body) != u32_at(pos + 4) {
            return Err(bad(path, format!("chunk at offset {pos} fails its checksum")));
        }
        let mut p = 0;
        while p < body.len() {
            let e = decode_entry(&body, p)
                .map_err(|e| bad(path, format!("chunk at offset {pos} does not parse: {}", e.0)))?;
            let key = body.slice(e.key.clone());
            let rec = e
                .record(&body)
                .ok_or_else(|| bad(path, format!("chunk at offset {pos} holds a tombstone")))?;
            if out.last().is_some_and(|(k, _): &(Bytes, Record)| *k >= key) {
                return Err(bad(path, format!("chunk at offset {pos} breaks key order")));
            }
            out.push((key, rec));
            p = e.end;
        }
        pos += 8 + len;
    }
    if pos + 24 != n {
        return Err(bad(
            path,
            if pos + 24 > n {
                "trailer is missing or damaged".into()
            } else {
                "bytes after the trailer".into()
            },
        ));
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&data[pos + 4..pos + 12]);
    let declared = u64::from_le_bytes(c);
    if &data[pos + 16..pos + 24] != END_MAGIC {
        return Err(bad(path, "trailer is missing or damaged".into()));
    }
    if crc32fast::hash(&data[..pos + 12]) != u32_at(pos + 12) {
        return Err(bad(path, "whole-file checksum mismatch".into()));
    }
    if declared != out.len() as u64 {
        return Err(bad(
            path,
            format!("trailer says {declared} entries, found {}", out.len()),
        ));
    }
    Ok((
        SnapshotFileInfo {
            size: n as u64,
            entries: declared,
            created_ms,
        },
        out,
    ))
}

/// Size and whole-file CRC: names a snapshot file's content (the restore marker).
fn identity(fs: &dyn FileSystem, snapshot: &Path) -> Result<String> {
    let f = fs
        .open_read(snapshot)
        .map_err(|e| Error::io(format!("reading {}", snapshot.display()), e))?;
    let size = f.size();
    let mut crc = [0u8; 4];
    if size >= 12 {
        f.read_exact_at(&mut crc, size - 12)
            .map_err(|e| Error::io(format!("reading {}", snapshot.display()), e))?;
    }
    Ok(format!(
        "{size} {}",
        crc.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Build a storage directory from a snapshot file (`--restore-from`, before `Db::open`).
///
/// Refuses a directory that holds data, except one restored from this same snapshot
/// (then it returns `Ok(None)`: a restart with the same flag keeps later writes).
/// Crash-safe: tables first, then the `RESTORED_FROM` marker, then the manifest and
/// CURRENT; a directory without CURRENT is restored again from scratch. The restored
/// log position is (0, 0), as with the Python engine.
pub fn restore_snapshot_file(fs: &dyn FileSystem, snapshot: &Path, dir: &Path) -> Result<Option<SnapshotFileInfo>> {
    let id = identity(fs, snapshot)?;
    let marker = dir.join(RESTORED_MARKER);
    let has_data = fs.exists(&dir.join(CURRENT))
        || fs.list_dir(dir).is_ok_and(|names| {
            names
                .iter()
                .any(|n| matches!(crate::filenames::parse(n), crate::filenames::FileKind::Wal(_)))
        });
    if has_data {
        let same = fs
            .read_all(&marker)
            .is_ok_and(|m| String::from_utf8_lossy(&m).trim() == id);
        if same {
            return Ok(None);
        }
        return Err(Error::InvalidArgument(format!(
            "--restore-from needs an empty data directory; {} already holds data",
            dir.display()
        )));
    }
    make_dirs(fs, dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let (info, entries) = read_snapshot_file(fs, snapshot)?;
    let mut next = 1u64;
    let (tables, count) = build_copy_tables(
        fs,
        dir,
        || {
            next += 1;
            next - 1
        },
        // A snapshot the Python engine served holds its hidden replication position
        // record; it is not user data (and the restored position is (0, 0)).
        entries
            .into_iter()
            .filter(|(k, _)| &k[..] != crate::recovery::LEGACY_POSITION_KEY)
            .map(Ok),
        |_, _| {},
    )?;
    publish(fs, &marker, format!("{id}\n").as_bytes())
        .map_err(|e| Error::io(format!("publishing {}", marker.display()), e))?;
    let manifest_no = next;
    let state = ManifestState {
        next_file: next + 2,
        log_number: next + 1,
        live_keys: count,
        tables,
        ..Default::default()
    };
    crate::manifest::publish(fs, dir, manifest_no, &state)?;
    Ok(Some(info))
}
