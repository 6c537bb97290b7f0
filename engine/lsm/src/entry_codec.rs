//! The byte layout of one key/record, shared by the WAL, SSTables and snapshot files.
//!
//! ```text
//! entry := op:u8 klen:u32 key[klen] [kind:u8 expire_at_ms:i64 vlen:u32 value[vlen]]   (bracket only for op 1)
//! op    := 0 DELETE (tombstone) | 1 PUT
//! ```
//! All integers little-endian (docs/formats/wal.md, "Grammar"). Decoding works on
//! offsets so callers can slice a shared buffer instead of copying.

use std::ops::Range;

use bytes::Bytes;

use crate::record::{PutRef, Record};

/// Entry op of a tombstone.
pub const OP_DELETE: u8 = 0;
/// Entry op of a put.
pub const OP_PUT: u8 = 1;
/// op + klen.
pub const KEY_HEAD_SIZE: usize = 5;
/// kind + expire_at_ms + vlen.
pub const PUT_HEAD_SIZE: usize = 13;

/// Why bytes are not a well-formed entry (the caller adds file and offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFormatError(pub String);

/// Size of the encoding of (key, record-or-tombstone).
pub fn encoded_size(key: &[u8], rec: Option<&Record>) -> usize {
    encoded_size_ref(key, rec.map(PutRef::from))
}

/// [`encoded_size`] of a borrowed put.
pub fn encoded_size_ref(key: &[u8], put: Option<PutRef<'_>>) -> usize {
    KEY_HEAD_SIZE + key.len() + put.map_or(0, |r| PUT_HEAD_SIZE + r.value.len())
}

/// Append the encoding of (key, record); `None` is a tombstone.
pub fn encode_entry(out: &mut Vec<u8>, key: &[u8], rec: Option<&Record>) {
    encode_entry_ref(out, key, rec.map(PutRef::from))
}

/// [`encode_entry`] of a borrowed put.
pub fn encode_entry_ref(out: &mut Vec<u8>, key: &[u8], put: Option<PutRef<'_>>) {
    let start = out.len();
    match put {
        None => {
            out.push(OP_DELETE);
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
        Some(r) => {
            out.push(OP_PUT);
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.push(r.kind);
            out.extend_from_slice(&r.expire_at_ms.to_le_bytes());
            out.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
            out.extend_from_slice(r.value);
        }
    }
    debug_assert_eq!(out.len() - start, encoded_size_ref(key, put));
}

/// A decoded entry as ranges into the buffer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// Where the key is.
    pub key: Range<usize>,
    /// `None` for a tombstone; else (kind, expire_at_ms, where the value is).
    pub put: Option<(u8, i64, Range<usize>)>,
    /// Offset just past the entry.
    pub end: usize,
}

impl RawEntry {
    /// The record, sharing `buf` (no copy).
    pub fn record(&self, buf: &Bytes) -> Option<Record> {
        self.put.as_ref().map(|(kind, exp, v)| Record {
            kind: *kind,
            value: buf.slice(v.clone()),
            expire_at_ms: *exp,
        })
    }
}

fn u32_at(buf: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])
}

fn i64_at(buf: &[u8], pos: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    i64::from_le_bytes(b)
}

/// The key of the entry at `pos` (for binary search: nothing else is decoded).
pub fn key_at(buf: &[u8], pos: usize) -> Result<&[u8], EntryFormatError> {
    if pos.checked_add(KEY_HEAD_SIZE).is_none_or(|e| e > buf.len()) {
        return Err(EntryFormatError("entry header runs past the end".into()));
    }
    let klen = u32_at(buf, pos + 1) as usize;
    let start = pos + KEY_HEAD_SIZE;
    match start.checked_add(klen) {
        Some(end) if end <= buf.len() => Ok(&buf[start..end]),
        _ => Err(EntryFormatError(format!("key of {klen} bytes runs past the end"))),
    }
}

/// Decode the entry at `pos`.
pub fn decode_entry(buf: &[u8], pos: usize) -> Result<RawEntry, EntryFormatError> {
    let end = buf.len();
    if pos.checked_add(KEY_HEAD_SIZE).is_none_or(|e| e > end) {
        return Err(EntryFormatError("entry header runs past the end".into()));
    }
    let op = buf[pos];
    let klen = u32_at(buf, pos + 1) as usize;
    let kstart = pos + KEY_HEAD_SIZE;
    let kend = match kstart.checked_add(klen) {
        Some(e) if e <= end => e,
        _ => return Err(EntryFormatError(format!("key of {klen} bytes runs past the end"))),
    };
    match op {
        OP_DELETE => Ok(RawEntry {
            key: kstart..kend,
            put: None,
            end: kend,
        }),
        OP_PUT => {
            if kend + PUT_HEAD_SIZE > end {
                return Err(EntryFormatError("value header runs past the end".into()));
            }
            let kind = buf[kend];
            let expire = i64_at(buf, kend + 1);
            let vlen = u32_at(buf, kend + 9) as usize;
            let vstart = kend + PUT_HEAD_SIZE;
            let vend = match vstart.checked_add(vlen) {
                Some(e) if e <= end => e,
                _ => return Err(EntryFormatError(format!("value of {vlen} bytes runs past the end"))),
            };
            Ok(RawEntry {
                key: kstart..kend,
                put: Some((kind, expire, vstart..vend)),
                end: vend,
            })
        }
        other => Err(EntryFormatError(format!("unknown entry op {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_matches_the_worked_example_of_wal_md() {
        let mut out = Vec::new();
        encode_entry(&mut out, b"k", Some(&Record::new(0, &b"v"[..])));
        assert_eq!(out, [1, 1, 0, 0, 0, b'k', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'v']);
        let e = decode_entry(&out, 0).unwrap();
        assert_eq!(&out[e.key.clone()], b"k");
        assert_eq!(
            e.record(&Bytes::from(out.clone())).unwrap().value,
            Bytes::from_static(b"v")
        );
        assert_eq!(e.end, out.len());
    }

    #[test]
    fn truncations_are_errors_not_panics() {
        let mut out = Vec::new();
        encode_entry(
            &mut out,
            b"key",
            Some(&Record {
                kind: 3,
                value: Bytes::from_static(b"value"),
                expire_at_ms: -5,
            }),
        );
        encode_entry(&mut out, b"gone", None);
        for cut in 0..out.len() {
            let _ = decode_entry(&out[..cut], 0);
            let _ = key_at(&out[..cut], 0);
        }
        let first = decode_entry(&out, 0).unwrap();
        let second = decode_entry(&out, first.end).unwrap();
        assert!(second.put.is_none());
        assert_eq!(&out[second.key], b"gone");
        let mut bad = out.clone();
        bad[0] = 7;
        assert!(decode_entry(&bad, 0).unwrap_err().0.contains("unknown entry op 7"));
    }
}
