//! The manifest: which tables make up the database, where WAL replay starts, and
//! (version 2) the log position the tables hold.
//!
//! ```text
//! MANIFEST-NNNNNN := magic "VMANIFST" | version:u32 | length:u32 | body[length] | crc:u32
//! crc  := CRC-32 of every byte before it
//! body := UTF-8 JSON {"next_file", "log_number", "live_keys", "tables": [
//!             {"number", "tier", "size", "entries", "smallest", "largest"}]}   (keys hex)
//!         version 2 adds "last_seq", "last_epoch" and "needs_full_copy"
//! CURRENT := "MANIFEST-NNNNNN\n"
//! ```
//! Every change publishes a complete new manifest under a new number, then
//! CURRENT, each by write-temp, fsync, rename, fsync-directory. Spec:
//! docs/formats/manifest.md.

use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::filenames::{manifest_name, CURRENT};
use crate::fs::{publish as publish_file, FileSystem};

/// Magic.
pub const MAGIC: &[u8; 8] = b"VMANIFST";
/// Written by the Python engine.
pub const VERSION_1: u32 = 1;
/// Written by this crate.
pub const VERSION_2: u32 = 2;

/// One table of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// File number.
    pub number: u64,
    /// Compaction tier.
    pub tier: u32,
    /// File size.
    pub size: u64,
    /// Entries.
    pub entries: u64,
    /// Smallest key.
    pub smallest: Bytes,
    /// Largest key.
    pub largest: Bytes,
}

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestState {
    /// Format version it was read in (written: always 2).
    pub version: u32,
    /// Every file number below it has been used.
    pub next_file: u64,
    /// WAL segments numbered below it are fully contained in the tables.
    pub log_number: u64,
    /// Live keys in the state the tables hold.
    pub live_keys: u64,
    /// v2: sequence of the newest batch the tables hold (replay continues at +1).
    pub last_seq: u64,
    /// v2: epoch of that batch.
    pub last_epoch: u64,
    /// v2: the data is a partial copy (migrated from a v1 position record marked INCOMPLETE).
    pub needs_full_copy: bool,
    /// Oldest first.
    pub tables: Vec<TableMeta>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Bytes> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

/// Encode in `version` (1 only for tests that build Python-engine directories).
pub fn encode(state: &ManifestState, version: u32) -> Vec<u8> {
    let tables: Vec<Value> = state
        .tables
        .iter()
        .map(|t| {
            json!({"number": t.number, "tier": t.tier, "size": t.size, "entries": t.entries,
                   "smallest": hex(&t.smallest), "largest": hex(&t.largest)})
        })
        .collect();
    let body = if version == VERSION_1 {
        json!({"next_file": state.next_file, "log_number": state.log_number, "live_keys": state.live_keys,
               "tables": tables})
    } else {
        json!({"next_file": state.next_file, "log_number": state.log_number, "live_keys": state.live_keys,
               "last_seq": state.last_seq, "last_epoch": state.last_epoch,
               "needs_full_copy": state.needs_full_copy, "tables": tables})
    };
    let body = body.to_string().into_bytes();
    let mut out = Vec::with_capacity(20 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(out.len(), 16 + body.len() + 4);
    out
}

/// Decode and check a manifest file's bytes.
pub fn decode(path: &Path, data: &[u8]) -> Result<ManifestState> {
    let bad = |off: u64, why: String| Error::corruption(path, off, why);
    if data.len() < 20 {
        return Err(bad(0, "manifest is shorter than its header".into()));
    }
    if &data[..8] != MAGIC {
        return Err(bad(0, format!("bad magic {:?}, not a manifest", &data[..8])));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != VERSION_1 && version != VERSION_2 {
        return Err(bad(8, format!("unsupported manifest version {version}")));
    }
    let length = u32::from_le_bytes([data[12], data[13], data[14], data[15]]) as usize;
    let end = 16 + length;
    if end + 4 != data.len() {
        return Err(bad(
            12,
            format!("length {length} does not match the file size {}", data.len()),
        ));
    }
    let crc = u32::from_le_bytes([data[end], data[end + 1], data[end + 2], data[end + 3]]);
    if crc32fast::hash(&data[..end]) != crc {
        return Err(bad(end as u64, "manifest checksum mismatch".into()));
    }
    let parse = || -> Option<ManifestState> {
        let v: Value = serde_json::from_slice(&data[16..end]).ok()?;
        let u = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64);
        let mut st = ManifestState {
            version,
            next_file: u(&v, "next_file")?,
            log_number: u(&v, "log_number")?,
            live_keys: u(&v, "live_keys")?,
            ..Default::default()
        };
        if version == VERSION_2 {
            st.last_seq = u(&v, "last_seq")?;
            st.last_epoch = u(&v, "last_epoch")?;
            st.needs_full_copy = v.get("needs_full_copy").and_then(Value::as_bool).unwrap_or(false);
        }
        for t in v.get("tables")?.as_array()? {
            st.tables.push(TableMeta {
                number: u(t, "number")?,
                tier: u32::try_from(u(t, "tier")?).ok()?,
                size: u(t, "size")?,
                entries: u(t, "entries")?,
                smallest: unhex(t.get("smallest")?.as_str()?)?,
                largest: unhex(t.get("largest")?.as_str()?)?,
            });
        }
        Some(st)
    };
    parse().ok_or_else(|| bad(16, "manifest body does not parse".into()))
}

/// The live manifest's number and state, or `None` for a directory without CURRENT.
pub fn read_current(fs: &dyn FileSystem, dir: &Path) -> Result<Option<(u64, ManifestState)>> {
    let cur = dir.join(CURRENT);
    let text = match fs.read_all(&cur) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", cur.display()), e)),
    };
    let text = String::from_utf8_lossy(&text);
    let name = text.trim();
    let number = match crate::filenames::parse(name) {
        crate::filenames::FileKind::Manifest(n) => n,
        _ => {
            return Err(Error::corruption(
                &cur,
                0,
                format!("CURRENT names {name:?}, not a manifest"),
            ))
        }
    };
    let path = dir.join(name);
    let data = match fs.read_all(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::corruption(
                &cur,
                0,
                format!("CURRENT names {name}, which does not exist"),
            ))
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    Ok(Some((number, decode(&path, &data)?)))
}

/// Write MANIFEST-`number` (version 2), then point CURRENT at it (both crash-atomic).
///
/// The directory fsync of the first publication also makes durable the names of
/// the tables created in the directory before this call.
pub fn publish(fs: &dyn FileSystem, dir: &Path, number: u64, state: &ManifestState) -> Result<()> {
    publish_version(fs, dir, number, state, VERSION_2)
}

/// [`publish`] in a given version (tests build Python-engine directories with 1).
pub fn publish_version(
    fs: &dyn FileSystem,
    dir: &Path,
    number: u64,
    state: &ManifestState,
    version: u32,
) -> Result<()> {
    let path = dir.join(manifest_name(number));
    publish_file(fs, &path, &encode(state, version))
        .map_err(|e| Error::io(format!("publishing {}", path.display()), e))?;
    let cur = dir.join(CURRENT);
    publish_file(fs, &cur, format!("{}\n", manifest_name(number)).as_bytes())
        .map_err(|e| Error::io(format!("publishing {}", cur.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_round_trip_and_v1_compatibility() {
        let st = ManifestState {
            version: 2,
            next_file: 14,
            log_number: 12,
            live_keys: 5210,
            last_seq: 99,
            last_epoch: 3,
            needs_full_copy: false,
            tables: vec![TableMeta {
                number: 10,
                tier: 1,
                size: 823_411,
                entries: 5210,
                smallest: Bytes::from_static(b"user"),
                largest: Bytes::from_static(b"user:999"),
            }],
        };
        let p = Path::new("MANIFEST-000013");
        assert_eq!(decode(p, &encode(&st, 2)).unwrap(), st);
        let v1 = decode(p, &encode(&st, 1)).unwrap();
        assert_eq!((v1.version, v1.last_seq, v1.tables.len()), (1, 0, 1));
        // The body of manifest.md's example, as the Python engine writes it.
        let body = br#"{"next_file":14,"log_number":12,"live_keys":5210,"tables":[{"number":10,"tier":1,"size":823411,"entries":5210,"smallest":"75736572","largest":"757365723a393939"}]}"#;
        let mut f = b"VMANIFST".to_vec();
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        f.extend_from_slice(body);
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(p, &f).unwrap().tables, st.tables);
        let mut bad = f.clone();
        bad[30] ^= 1;
        assert!(decode(p, &bad).unwrap_err().is_corruption());
    }
}
