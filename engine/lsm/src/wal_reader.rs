//! Reading WAL segments back, and telling a torn tail from corruption.
//!
//! A crash can leave the end of the newest segment short (a write cut off) or
//! filled with zeros (the file grew but the data never reached the disk). Both
//! are a *torn tail*: dropped with a warning. Anything else that fails a check -
//! a bad record followed by more data, or any damage in an older, fully synced
//! segment - is *corruption*: the engine refuses to start. The rules are those of
//! docs/formats/wal.md, "Recovery rules", for both segment versions.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch;
use crate::entry_codec::{decode_entry, RawEntry};
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::wal_format::*;

/// One valid record of a segment.
#[derive(Debug, Clone)]
pub struct ScannedBatch {
    /// The payload (a slice of the segment's buffer).
    pub payload: Bytes,
    /// Version 2: (epoch, seq); version 1: none.
    pub position: Option<(u64, u64)>,
    /// The entries, offsets relative to `payload`.
    pub entries: Vec<RawEntry>,
    /// Offset of the record in the segment.
    pub offset: u64,
}

/// What one pass over a segment found.
#[derive(Debug)]
pub struct SegmentScan {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Segment format version (0 when the header is unreadable).
    pub version: u16,
    /// Every valid record, in order.
    pub batches: Vec<ScannedBatch>,
    /// Offset just past the last valid record.
    pub valid_end: u64,
    /// The first bad byte and why, if any.
    pub problem: Option<(u64, String)>,
    /// Whether that problem is a droppable torn tail.
    pub torn: bool,
}

impl SegmentScan {
    /// Bytes a torn-tail truncation drops.
    pub fn dropped_bytes(&self) -> u64 {
        if self.problem.is_some() {
            self.size - self.valid_end
        } else {
            0
        }
    }
}

fn u32_at(b: &[u8], p: usize) -> u32 {
    u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]])
}

/// Read and check a whole segment. `last`: it is the newest one (a torn tail is possible).
pub fn scan_segment(fs: &dyn FileSystem, path: &Path, segment: u64, last: bool) -> Result<SegmentScan> {
    let data = Bytes::from(
        fs.read_all(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
    );
    Ok(scan_bytes(path, data, segment, last))
}

/// [`scan_segment`] on bytes already read.
pub fn scan_bytes(path: &Path, data: Bytes, segment: u64, last: bool) -> SegmentScan {
    let size = data.len();
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        size: size as u64,
        version: 0,
        batches: Vec::new(),
        valid_end: 0,
        problem: None,
        torn: false,
    };
    let problem = |scan: &mut SegmentScan, offset: usize, reason: String, tail_shaped: bool| {
        scan.problem = Some((offset as u64, reason));
        scan.torn = last && (tail_shaped || data[offset.min(size)..].iter().all(|&b| b == 0));
    };
    if size < FILE_HEADER_SIZE {
        problem(&mut scan, 0, "file header is incomplete".into(), true);
        return scan;
    }
    if &data[..4] != MAGIC {
        problem(
            &mut scan,
            0,
            format!("bad magic {:?}, not a WAL segment", &data[..4]),
            false,
        );
        return scan;
    }
    let version = u16::from_le_bytes([data[4], data[5]]);
    if version != VERSION_1 && version != VERSION_2 {
        problem(
            &mut scan,
            0,
            format!("unsupported WAL version {version} (this build reads 1 and 2)"),
            false,
        );
        return scan;
    }
    let mut num = [0u8; 8];
    num.copy_from_slice(&data[8..16]);
    let number = u64::from_le_bytes(num);
    if number != segment {
        problem(
            &mut scan,
            0,
            format!("header says segment {number}, file name says {segment}"),
            false,
        );
        return scan;
    }
    scan.version = version;
    let want_type = if version == VERSION_1 {
        TYPE_BATCH
    } else {
        TYPE_SEQ_BATCH
    };
    let mut pos = FILE_HEADER_SIZE;
    scan.valid_end = pos as u64;
    while pos < size {
        if size - pos < RECORD_HEADER_SIZE {
            problem(&mut scan, pos, "record header is cut off".into(), true);
            return scan;
        }
        let hcrc = u32_at(&data, pos);
        let length = u32_at(&data, pos + 4);
        let rtype = data[pos + 8];
        let pcrc = u32_at(&data, pos + 9);
        if header_crc(length, rtype, pcrc) != hcrc {
            problem(&mut scan, pos, "record header checksum mismatch".into(), false);
            return scan;
        }
        let body = pos + RECORD_HEADER_SIZE;
        let end = body + length as usize;
        if length > MAX_RECORD_BYTES || end > size {
            problem(
                &mut scan,
                pos,
                format!("record of {length} bytes runs past the end of the file"),
                true,
            );
            return scan;
        }
        if crc32fast::hash(&data[body..end]) != pcrc {
            problem(&mut scan, pos, "record payload checksum mismatch".into(), end == size);
            return scan;
        }
        if rtype != want_type {
            problem(
                &mut scan,
                pos,
                format!("unknown record type {rtype} in a version-{version} segment"),
                false,
            );
            return scan;
        }
        let payload = data.slice(body..end);
        let parsed = if version == VERSION_1 {
            parse_v1(&payload).map(|entries| ScannedBatch {
                payload: payload.clone(),
                position: None,
                entries,
                offset: pos as u64,
            })
        } else {
            batch::parse(&payload).map(|b| ScannedBatch {
                payload: payload.clone(),
                position: Some((b.epoch, b.seq)),
                entries: b.entries,
                offset: pos as u64,
            })
        };
        match parsed {
            Ok(b) => scan.batches.push(b),
            Err(why) => {
                problem(
                    &mut scan,
                    pos,
                    format!("batch does not parse ({why}) although its checksum matches"),
                    false,
                );
                return scan;
            }
        }
        pos = end;
        scan.valid_end = pos as u64;
    }
    scan
}

/// A version-1 batch: entries to the end of the payload.
fn parse_v1(payload: &[u8]) -> Result<Vec<RawEntry>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let e = decode_entry(payload, pos).map_err(|e| e.0)?;
        pos = e.end;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(version: u16, records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = file_header(version, 7).to_vec();
        for r in records {
            out.extend_from_slice(r);
        }
        out
    }

    fn v1_record(key: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        crate::entry_codec::encode_entry(&mut p, key, Some(&crate::Record::new(0, &b"v"[..])));
        encode_record(TYPE_BATCH, &p)
    }

    fn scan(data: Vec<u8>, last: bool) -> SegmentScan {
        scan_bytes(Path::new("wal-000007.log"), Bytes::from(data), 7, last)
    }

    #[test]
    fn clean_v1_segment() {
        let s = scan(segment(1, &[v1_record(b"a"), v1_record(b"b")]), true);
        assert!(s.problem.is_none());
        assert_eq!(s.batches.len(), 2);
        assert_eq!(s.version, 1);
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail_and_never_corruption() {
        let full = segment(1, &[v1_record(b"a"), v1_record(b"b")]);
        let first_end = FILE_HEADER_SIZE + v1_record(b"a").len();
        for cut in first_end + 1..full.len() {
            let s = scan(full[..cut].to_vec(), true);
            assert!(s.torn, "cut at {cut}: {:?}", s.problem);
            assert_eq!(s.valid_end as usize, first_end);
            let older = scan(full[..cut].to_vec(), false);
            assert!(!older.torn, "an older segment never has a torn tail");
        }
    }

    #[test]
    fn damage_followed_by_data_is_corruption() {
        let mut data = segment(1, &[v1_record(b"a"), v1_record(b"b")]);
        data[FILE_HEADER_SIZE + 15] ^= 0x40; // payload of the first record
        let s = scan(data, true);
        assert!(!s.torn);
        assert!(s.problem.unwrap().1.contains("payload checksum"));
        let mut data = segment(1, &[v1_record(b"a"), v1_record(b"b")]);
        data[FILE_HEADER_SIZE + 5] ^= 0x01; // length of the first record
        let s = scan(data, true);
        assert!(!s.torn);
        assert!(s.problem.unwrap().1.contains("header checksum"));
    }

    #[test]
    fn zeros_to_the_end_are_a_torn_tail() {
        let mut data = segment(1, &[v1_record(b"a")]);
        data.extend_from_slice(&[0u8; 100]);
        let s = scan(data, true);
        assert!(s.torn);
    }

    #[test]
    fn record_type_must_match_the_version() {
        let s = scan(segment(2, &[v1_record(b"a")]), true);
        assert!(!s.torn);
        assert!(s.problem.unwrap().1.contains("unknown record type 1"));
    }
}
