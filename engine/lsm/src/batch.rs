//! The sequenced write batch (WAL version 2): encoded once, logged, shipped to replicas as is.
//!
//! ```text
//! batch := epoch:u64 seq:u64 count:u32 entry{count}      (20-byte header, then entry_codec entries)
//! ```
//! The WAL record payload of a version-2 segment is exactly these bytes, and so is
//! what `Db::batches_since` yields and `Db::apply_replicated` takes
//! (docs/formats/wal.md, "Version 2").

use bytes::Bytes;

use crate::entry_codec::{decode_entry, encode_entry_ref, encoded_size_ref, RawEntry};
use crate::error::{Error, Result};
use crate::record::{Mutation, MutationRef};

/// Size of the batch header (epoch, seq, count).
pub const HEADER_SIZE: usize = 20;
/// Offset of `seq` inside the batch.
pub const SEQ_OFFSET: usize = 8;

/// A decoded batch: header fields and its entries as ranges into the raw bytes.
#[derive(Debug, Clone)]
pub struct ParsedBatch {
    /// Epoch of the primary that created the batch.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
    /// The entries, offsets relative to the start of the batch.
    pub entries: Vec<RawEntry>,
}

fn u64_at(buf: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    u64::from_le_bytes(b)
}

/// Read only the (epoch, seq) of a batch.
pub fn header(raw: &[u8]) -> Option<(u64, u64)> {
    (raw.len() >= HEADER_SIZE).then(|| (u64_at(raw, 0), u64_at(raw, SEQ_OFFSET)))
}

/// Decode and check a whole batch: the count must match and the entries must fill it exactly.
pub fn parse(raw: &[u8]) -> Result<ParsedBatch, String> {
    if raw.len() < HEADER_SIZE {
        return Err(format!(
            "batch of {} bytes is shorter than its 20-byte header",
            raw.len()
        ));
    }
    let epoch = u64_at(raw, 0);
    let seq = u64_at(raw, SEQ_OFFSET);
    let count = u32::from_le_bytes([raw[16], raw[17], raw[18], raw[19]]) as usize;
    let mut entries = Vec::with_capacity(count.min(raw.len() / 5));
    let mut pos = HEADER_SIZE;
    for i in 0..count {
        let e = decode_entry(raw, pos).map_err(|e| format!("entry {i} of {count}: {}", e.0))?;
        pos = e.end;
        entries.push(e);
    }
    if pos != raw.len() {
        return Err(format!(
            "{} bytes after the {count} entries the header announces",
            raw.len() - pos
        ));
    }
    Ok(ParsedBatch { epoch, seq, entries })
}

/// A batch encoded behind `reserve` spare bytes (the WAL record header goes there),
/// with its sequence number still to be set (`Db::commit` assigns it under its lock).
pub struct Encoded {
    /// `reserve` bytes, then the batch.
    pub buf: Vec<u8>,
    /// Where the batch starts in `buf`.
    pub reserve: usize,
    /// The entries, offsets relative to the start of the batch.
    pub entries: Vec<RawEntry>,
}

/// Encode mutations as a batch of `epoch` (seq 0 until [`Encoded::set_seq`]).
pub fn encode(reserve: usize, epoch: u64, mutations: &[Mutation]) -> Result<Encoded> {
    encode_refs(reserve, epoch, mutations.iter().map(Mutation::as_ref))
}

/// [`encode`] of borrowed mutations (walked twice: sizes, then bytes).
pub fn encode_refs<'a, I>(reserve: usize, epoch: u64, mutations: I) -> Result<Encoded>
where
    I: Iterator<Item = MutationRef<'a>> + Clone,
{
    let mut size = reserve + HEADER_SIZE;
    let mut count = 0usize;
    for m in mutations.clone() {
        if m.key.len() > u32::MAX as usize || m.put.is_some_and(|r| r.value.len() > u32::MAX as usize) {
            return Err(Error::InvalidArgument("key or value longer than 4 GiB".into()));
        }
        size += encoded_size_ref(m.key, m.put);
        count += 1;
    }
    if count > u32::MAX as usize {
        return Err(Error::InvalidArgument("too many mutations in one batch".into()));
    }
    let mut buf = Vec::with_capacity(size);
    buf.resize(reserve, 0);
    buf.extend_from_slice(&epoch.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.extend_from_slice(&(count as u32).to_le_bytes());
    let mut entries = Vec::with_capacity(count);
    for m in mutations {
        let start = buf.len() - reserve;
        encode_entry_ref(&mut buf, m.key, m.put);
        let kstart = start + crate::entry_codec::KEY_HEAD_SIZE;
        let kend = kstart + m.key.len();
        let put = m.put.map(|r| {
            let vstart = kend + crate::entry_codec::PUT_HEAD_SIZE;
            (r.kind, r.expire_at_ms, vstart..vstart + r.value.len())
        });
        entries.push(RawEntry {
            key: kstart..kend,
            put,
            end: buf.len() - reserve,
        });
    }
    assert_eq!(buf.len(), size, "batch encoder and size disagree");
    Ok(Encoded { buf, reserve, entries })
}

impl Encoded {
    /// Set the batch's sequence number.
    pub fn set_seq(&mut self, seq: u64) {
        let at = self.reserve + SEQ_OFFSET;
        self.buf[at..at + 8].copy_from_slice(&seq.to_le_bytes());
    }
}

/// Encode a complete batch (tests, tools): the bytes `batches_since` would yield.
pub fn encode_batch(epoch: u64, seq: u64, mutations: &[Mutation]) -> Result<Bytes> {
    let mut e = encode(0, epoch, mutations)?;
    e.set_seq(seq);
    Ok(Bytes::from(e.buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn round_trip_and_strict_parse() {
        let muts = vec![
            Mutation::put(&b"k"[..], Record::new(0, &b"v"[..])),
            Mutation::delete(&b"d"[..]),
        ];
        let raw = encode_batch(2, 813, &muts).unwrap();
        assert_eq!(header(&raw), Some((2, 813)));
        let p = parse(&raw).unwrap();
        assert_eq!((p.epoch, p.seq, p.entries.len()), (2, 813, 2));
        assert_eq!(&raw[p.entries[1].key.clone()], b"d");
        let enc = encode(13, 2, &muts).unwrap();
        assert_eq!(enc.entries, p.entries);
        let mut longer = raw.to_vec();
        longer.push(0);
        assert!(parse(&longer).unwrap_err().contains("after the 2 entries"));
        for cut in 0..raw.len() {
            assert!(parse(&raw[..cut]).is_err());
        }
    }

    /// Borrowed mutations (`Db::commit_refs`) encode to the very bytes of owned ones.
    #[test]
    fn borrowed_mutations_encode_alike() {
        use crate::record::PutRef;
        let muts = vec![
            Mutation::put(
                &b"key"[..],
                Record {
                    kind: 2,
                    value: Bytes::from_static(b"17"),
                    expire_at_ms: 99,
                },
            ),
            Mutation::delete(&b"gone"[..]),
        ];
        let refs = [
            MutationRef {
                key: b"key",
                put: Some(PutRef {
                    kind: 2,
                    value: b"17",
                    expire_at_ms: 99,
                }),
            },
            MutationRef {
                key: b"gone",
                put: None,
            },
        ];
        let a = encode(7, 3, &muts).unwrap();
        let b = encode_refs(7, 3, refs.iter().copied()).unwrap();
        assert_eq!((a.buf, a.entries), (b.buf, b.entries));
    }
}
