//! Following a version-1 primary (the Python data plane): the upgrade path.
//!
//! A cluster moves from the Python data plane to the native one by a rolling
//! update, replicas first (docs/operator/upgrade.md). While the primary is still
//! a Python node it streams version 1 (docs/formats/replication.md, sections 2
//! and 3); a native replica follows it by translating what it receives into the
//! version-2 form its own log keeps:
//!
//! - each version-1 batch (`epoch seq time_ms count mutation*`) becomes the
//!   version-2 batch with the same epoch, sequence and mutations, in order
//!   (`time_ms` is dropped: lag is measured from heartbeats);
//! - the reserved position key (`ff ff "velocity/replication/position"`) is
//!   dropped from batches and copies: a version-1 node keeps its position in its
//!   data, a native node in its log header, so the record would only be a stray
//!   key here.
//!
//! Only this direction exists: a native primary streams version 2 only, and a
//! Python replica refuses it, so the primary is the last node a rolling update
//! moves. The parsing is as strict as the Python reader's (`batch_codec.py`):
//! lengths past the end, unknown tags and a count that disagrees with the bytes
//! are a broken stream.

use bytes::Bytes;
use velocity_lsm::batch::encode_batch;
use velocity_lsm::{Mutation as LogMutation, Record as LogRecord, LEGACY_POSITION_KEY};

use crate::store::{Key, Record};

/// `epoch:u64 seq:u64 time_ms:u64 count:u32`.
const BATCH_HEAD: usize = 28;
const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;
/// `tag:u8 kind:u8 expire_at_ms:u64 value_len:u32`.
const PUT_HEAD: usize = 14;

/// One mutation as the version-1 stream carries it: (key, None) deletes.
type V1Mutation<'a> = (&'a [u8], Option<(u8, i64, &'a [u8])>);

fn u32_at(buf: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])
}

fn u64_at(buf: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    u64::from_le_bytes(b)
}

/// Reads the mutation at `pos`: it and the offset after it.
fn mutation(buf: &[u8], pos: usize) -> Result<(V1Mutation<'_>, usize), String> {
    let end = buf.len();
    if end - pos < 5 {
        return Err(format!("mutation header truncated at offset {pos} of {end}"));
    }
    let klen = u32_at(buf, pos) as usize;
    let kstart = pos + 4;
    if end - kstart < klen + 1 {
        return Err(format!(
            "key of {klen} bytes runs past the end ({end}) at offset {kstart}"
        ));
    }
    let key = &buf[kstart..kstart + klen];
    let at = kstart + klen;
    match buf[at] {
        TAG_DELETE => Ok(((key, None), at + 1)),
        TAG_PUT => {
            if end - at < PUT_HEAD {
                return Err(format!("put header truncated at offset {at} of {end}"));
            }
            let kind = buf[at + 1];
            // Version 1 writes expiry as u64; a value above i64::MAX is no time anyone wrote.
            let expire_at_ms =
                i64::try_from(u64_at(buf, at + 2)).map_err(|_| format!("expiry out of range at offset {}", at + 2))?;
            let vlen = u32_at(buf, at + 10) as usize;
            let vstart = at + PUT_HEAD;
            if end - vstart < vlen {
                return Err(format!(
                    "value of {vlen} bytes runs past the end ({end}) at offset {vstart}"
                ));
            }
            Ok((
                (key, Some((kind, expire_at_ms, &buf[vstart..vstart + vlen]))),
                vstart + vlen,
            ))
        }
        tag => Err(format!("unknown mutation tag {tag} at offset {at}")),
    }
}

fn is_position_record(key: &[u8]) -> bool {
    key == LEGACY_POSITION_KEY
}

/// Every batch of a version-1 `ReplBatches.batches` payload, re-encoded as the
/// version-2 batches this node logs (same epoch, seq and mutations, without the
/// position record).
pub fn batches(buf: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    let end = buf.len();
    while pos < end {
        if end - pos < BATCH_HEAD {
            return Err(format!("batch header truncated at offset {pos} of {end}"));
        }
        let epoch = u64_at(buf, pos);
        let seq = u64_at(buf, pos + 8);
        let count = u32_at(buf, pos + 24) as usize;
        pos += BATCH_HEAD;
        let mut muts = Vec::with_capacity(count.min((end - pos) / 5));
        for _ in 0..count {
            let ((key, put), next) = mutation(buf, pos)?;
            pos = next;
            if is_position_record(key) {
                continue;
            }
            let key = Bytes::copy_from_slice(key);
            muts.push(match put {
                None => LogMutation::Delete { key },
                Some((kind, expire_at_ms, value)) => LogMutation::Put {
                    key,
                    record: LogRecord {
                        kind,
                        value: Bytes::copy_from_slice(value),
                        expire_at_ms,
                    },
                },
            });
        }
        out.push(encode_batch(epoch, seq, &muts).map_err(|e| format!("batch {seq}: {e}"))?);
    }
    Ok(out)
}

/// The records of a version-1 `ReplSnapshot.records` chunk (puts only), without
/// the position record.
pub fn records(buf: &[u8]) -> Result<Vec<(Key, Record)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let ((key, put), next) = mutation(buf, pos)?;
        let Some((kind, expire_at_ms, value)) = put else {
            return Err(format!("snapshot record at {pos} is a deletion"));
        };
        pos = next;
        if is_position_record(key) {
            continue;
        }
        out.push((
            key.into(),
            Record {
                kind,
                value: value.into(),
                expire_at_ms,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_mutation(out: &mut Vec<u8>, key: &[u8], put: Option<(u8, u64, &[u8])>) {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        match put {
            None => out.push(TAG_DELETE),
            Some((kind, at, v)) => {
                out.extend_from_slice(&[TAG_PUT, kind]);
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    /// (key, None to delete or Some((kind, expire_at_ms, value))), as a test writes it.
    type TestMutation<'a> = (&'a [u8], Option<(u8, u64, &'a [u8])>);

    fn v1_batch(epoch: u64, seq: u64, muts: &[TestMutation<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&epoch.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
        out.extend_from_slice(&(muts.len() as u32).to_le_bytes());
        for (k, p) in muts {
            v1_mutation(&mut out, k, *p);
        }
        out
    }

    #[test]
    fn the_documented_vector_becomes_the_same_version_2_batch() {
        // docs/formats/replication.md section 3: epoch 2, seq 813, delete "k".
        let v1: Vec<u8> = [
            &[2, 0, 0, 0, 0, 0, 0, 0][..],
            &[0x2d, 3, 0, 0, 0, 0, 0, 0],
            &[0x00, 0x14, 0x9c, 0xc2, 0x9a, 0x01, 0, 0],
            &[1, 0, 0, 0],
            &[1, 0, 0, 0, b'k', 0],
        ]
        .concat();
        let got = batches(&v1).unwrap();
        // Section 9.2's worked example, without its length prefix.
        let v2: Vec<u8> = [
            &[2, 0, 0, 0, 0, 0, 0, 0][..],
            &[0x2d, 3, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0],
            &[0, 1, 0, 0, 0, b'k'],
        ]
        .concat();
        assert_eq!(got, vec![Bytes::from(v2)]);
    }

    #[test]
    fn puts_keep_kind_expiry_and_value_and_the_position_record_is_dropped() {
        let pos_value = [0u8; 17];
        let mut buf = v1_batch(
            3,
            7,
            &[
                (b"a", Some((2, 0, b"12"))),
                (LEGACY_POSITION_KEY, Some((0, 0, &pos_value))),
                (b"b", Some((1, 1_900_000_000_000, b"x"))),
            ],
        );
        buf.extend(v1_batch(3, 8, &[(b"a", None)]));
        let got = batches(&buf).unwrap();
        let want = vec![
            encode_batch(
                3,
                7,
                &[
                    LogMutation::put(&b"a"[..], LogRecord::new(2, &b"12"[..])),
                    LogMutation::put(
                        &b"b"[..],
                        LogRecord {
                            kind: 1,
                            value: Bytes::from_static(b"x"),
                            expire_at_ms: 1_900_000_000_000,
                        },
                    ),
                ],
            )
            .unwrap(),
            encode_batch(
                3,
                8,
                &[LogMutation::Delete {
                    key: Bytes::from_static(b"a"),
                }],
            )
            .unwrap(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn snapshot_chunks_drop_the_position_record_and_refuse_deletions() {
        let mut buf = Vec::new();
        v1_mutation(&mut buf, b"k", Some((0, 5, b"v")));
        v1_mutation(&mut buf, LEGACY_POSITION_KEY, Some((0, 0, &[0u8; 17])));
        let recs = records(&buf).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(&*recs[0].0, b"k");
        assert_eq!(
            (recs[0].1.kind, &*recs[0].1.value, recs[0].1.expire_at_ms),
            (0, &b"v"[..], 5)
        );
        v1_mutation(&mut buf, b"gone", None);
        assert!(records(&buf).unwrap_err().contains("deletion"));
    }

    #[test]
    fn broken_payloads_are_refused_not_misread() {
        let good = v1_batch(1, 1, &[(b"key", Some((0, 0, b"value")))]);
        for cut in 1..good.len() {
            assert!(batches(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut bad_tag = good.clone();
        bad_tag[BATCH_HEAD + 4 + 3] = 9;
        assert!(batches(&bad_tag).unwrap_err().contains("unknown mutation tag 9"));
        let mut big_count = good;
        big_count[24] = 2;
        assert!(batches(&big_count).is_err());
    }
}
