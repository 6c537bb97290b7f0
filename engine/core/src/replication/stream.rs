//! Replication stream version 2 (docs/formats/replication.md, "Version 2"):
//! the bodies of REPL_BATCHES and REPL_SNAPSHOT, the version negotiation, and
//! the FlatBuffers messages of the stream (through velocity_proto's generated
//! tables: none of this is on a client's request path).
//!
//! - `ReplBatches.batches` := (len:u32 batch{len})+ — each `batch` is the
//!   store's encoded batch exactly as it logs it (velocity_lsm::batch:
//!   `epoch:u64 seq:u64 count:u32 entry*`); the length prefix lets a receiver
//!   split the frame without decoding entries.
//! - `ReplSnapshot.records` := entry* (velocity_lsm::entry_codec, puts only).
//! - Negotiation: ReplSyncRequest.stream_version is the version the replica
//!   speaks (0 = absent = 1); the primary answers with the version that follows
//!   in ReplSyncResponse.stream_version or refuses with UNSUPPORTED_VERSION
//!   naming both.

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use velocity_lsm::entry_codec;
use velocity_proto::{body, fbs, ErrorCode};

use super::stream_v1;
use crate::error::{VError, VResult};
use crate::store::{Key, Record};

/// The stream version this data plane speaks.
pub const STREAM_VERSION: u16 = 2;
/// The version a node that does not send the field speaks (the Python engine).
pub const LEGACY_VERSION: u16 = 1;

/// The version a peer announced (0: the field is absent, which is version 1).
pub fn announced(v: u16) -> u16 {
    if v == 0 {
        LEGACY_VERSION
    } else {
        v
    }
}

/// Primary side: the version to stream to a replica that speaks `replica_v`.
pub fn negotiate(replica_v: u16, replica: &str) -> VResult<u16> {
    let v = announced(replica_v);
    if v == STREAM_VERSION {
        return Ok(v);
    }
    Err(VError::new(
        ErrorCode::UnsupportedVersion,
        format!(
            "replica {replica} speaks replication stream version {v}; this primary (native data plane) \
             speaks version {STREAM_VERSION} only: run both on the same data plane \
             (docs/formats/replication.md, \"Version negotiation\")"
        ),
    ))
}

/// Replica side: the version of the stream that follows, if this node can follow it:
/// its own, or version 1 (a Python primary: the upgrade path, stream_v1.rs).
pub fn accept(primary_v: u16, primary: &str) -> Result<u16, String> {
    let v = announced(primary_v);
    if v == STREAM_VERSION || v == LEGACY_VERSION {
        return Ok(v);
    }
    Err(format!(
        "primary {primary} streams replication version {v}; this replica (native data plane) follows \
         versions {LEGACY_VERSION} and {STREAM_VERSION} only"
    ))
}

/// Appends batches to a `ReplBatches.batches` payload.
pub fn pack_batch(raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(raw);
}

/// Splits a `ReplBatches.batches` payload into its batches (copies out of the frame).
pub fn unpack_batches(buf: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let Some(head) = buf.get(pos..pos + 4) else {
            return Err(format!("batch length cut at offset {pos}"));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let start = pos + 4;
        let Some(raw) = start.checked_add(len).and_then(|end| buf.get(start..end)) else {
            return Err(format!("batch of {len} bytes at offset {pos} runs past the frame"));
        };
        out.push(Bytes::copy_from_slice(raw));
        pos = start + len;
    }
    if out.is_empty() {
        return Err("REPL_BATCHES without a batch".into());
    }
    Ok(out)
}

/// Appends one record to a `ReplSnapshot.records` payload.
pub fn pack_record(key: &[u8], rec: &Record, out: &mut Vec<u8>) {
    let r = velocity_lsm::Record {
        kind: rec.kind,
        value: Bytes::from_owner(rec.value.clone()),
        expire_at_ms: rec.expire_at_ms,
    };
    entry_codec::encode_entry(out, key, Some(&r));
}

/// The records of a `ReplSnapshot.records` payload.
pub fn unpack_records(buf: &[u8]) -> Result<Vec<(Key, Record)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let e = entry_codec::decode_entry(buf, pos).map_err(|e| format!("snapshot record at {pos}: {}", e.0))?;
        let Some((kind, at, v)) = e.put.clone() else {
            return Err(format!("snapshot record at {pos} is a deletion"));
        };
        out.push((
            buf[e.key.clone()].into(),
            Record {
                kind,
                value: buf[v].into(),
                expire_at_ms: at,
            },
        ));
        pos = e.end;
    }
    Ok(out)
}

// -- messages ---------------------------------------------------------------------

/// The largest epoch or seq accepted from the wire (wire_checks.py): `+ 1` never
/// overflows, and every value stays exact in a JSON number.
pub const MAX_WIRE: u64 = (1 << 53) - 1;

/// INVALID_ARGUMENT for an epoch or seq above [`MAX_WIRE`], before it is used.
pub fn check_range(value: u64, what: &str) -> VResult<u64> {
    if value > MAX_WIRE {
        return Err(VError::invalid(format!(
            "{what} {value} is out of range (0 to 2^53 - 1)"
        )));
    }
    Ok(value)
}

fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: flatbuffers::WIPOffset<T>) -> Vec<u8> {
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

/// What a replica sends in REPL_SYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub node_id: String,
    pub endpoint: String,
    pub epoch: u64,
    pub seq: u64,
    pub full: bool,
    pub node_epoch: u64,
    pub stream_version: u16,
}

pub fn sync_request(r: &SyncRequest) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let node_id = Some(fbb.create_string(&r.node_id));
    let endpoint = Some(fbb.create_string(&r.endpoint));
    let root = fbs::ReplSyncRequest::create(
        &mut fbb,
        &fbs::ReplSyncRequestArgs {
            node_id,
            endpoint,
            epoch: r.epoch,
            seq: r.seq,
            full: r.full,
            node_epoch: r.node_epoch,
            stream_version: r.stream_version,
        },
    );
    finish(fbb, root)
}

fn body_error(what: &str, e: impl std::fmt::Display) -> VError {
    VError::body(format!("bad {what} body: {e}"))
}

pub fn decode_sync_request(b: &[u8]) -> VResult<SyncRequest> {
    let r = body::decode::<fbs::ReplSyncRequest>(b).map_err(|e| body_error("REPL_SYNC", e))?;
    Ok(SyncRequest {
        node_id: r.node_id().unwrap_or_default().to_string(),
        endpoint: r.endpoint().unwrap_or_default().to_string(),
        epoch: check_range(r.epoch(), "REPL_SYNC epoch")?,
        seq: check_range(r.seq(), "REPL_SYNC seq")?,
        full: r.full(),
        node_epoch: check_range(r.node_epoch(), "REPL_SYNC node_epoch")?,
        stream_version: r.stream_version(),
    })
}

/// The primary's answer to REPL_SYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub full: bool,
    pub epoch: u64,
    pub seq: u64,
    pub history: Vec<(u64, u64)>,
    pub node_id: String,
    pub stream_version: u16,
}

pub fn sync_response(r: &SyncResponse) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let entries: Vec<_> = r
        .history
        .iter()
        .map(|&(epoch, start_seq)| fbs::EpochStart::create(&mut fbb, &fbs::EpochStartArgs { epoch, start_seq }))
        .collect();
    let history = Some(fbb.create_vector(&entries));
    let node_id = Some(fbb.create_string(&r.node_id));
    let root = fbs::ReplSyncResponse::create(
        &mut fbb,
        &fbs::ReplSyncResponseArgs {
            full: r.full,
            epoch: r.epoch,
            seq: r.seq,
            history,
            node_id,
            stream_version: r.stream_version,
        },
    );
    finish(fbb, root)
}

pub fn decode_sync_response(b: &[u8]) -> VResult<SyncResponse> {
    let r = body::decode::<fbs::ReplSyncResponse>(b).map_err(|e| body_error("REPL_SYNC reply", e))?;
    Ok(SyncResponse {
        full: r.full(),
        epoch: r.epoch(),
        seq: r.seq(),
        history: r
            .history()
            .map(|h| h.iter().map(|e| (e.epoch(), e.start_seq())).collect())
            .unwrap_or_default(),
        node_id: r.node_id().unwrap_or_default().to_string(),
        stream_version: r.stream_version(),
    })
}

pub fn batches_body(payload: &[u8]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(payload.len() + 64);
    let batches = Some(fbb.create_vector(payload));
    let root = fbs::ReplBatches::create(&mut fbb, &fbs::ReplBatchesArgs { batches });
    finish(fbb, root)
}

/// A REPL_BATCHES body of stream `version`, as the version-2 batches this node logs
/// (version 1, from a Python primary, is translated by stream_v1.rs).
pub fn decode_batches(b: &[u8], version: u16) -> VResult<Vec<Bytes>> {
    let r = body::decode::<fbs::ReplBatches>(b).map_err(|e| body_error("REPL_BATCHES", e))?;
    let payload = r.batches().map(|v| v.bytes()).unwrap_or_default();
    if version == LEGACY_VERSION {
        stream_v1::batches(payload)
    } else {
        unpack_batches(payload)
    }
    .map_err(VError::body)
}

pub fn snapshot_body(records: &[u8], last: bool) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(records.len() + 64);
    let records = Some(fbb.create_vector(records));
    let root = fbs::ReplSnapshot::create(&mut fbb, &fbs::ReplSnapshotArgs { records, last });
    finish(fbb, root)
}

/// A REPL_SNAPSHOT chunk of stream `version`: its records and whether it is the last.
pub fn decode_snapshot(b: &[u8], version: u16) -> VResult<(Vec<(Key, Record)>, bool)> {
    let r = body::decode::<fbs::ReplSnapshot>(b).map_err(|e| body_error("REPL_SNAPSHOT", e))?;
    let payload = r.records().map(|v| v.bytes()).unwrap_or_default();
    let recs = if version == LEGACY_VERSION {
        stream_v1::records(payload)
    } else {
        unpack_records(payload)
    }
    .map_err(VError::body)?;
    Ok((recs, r.last()))
}

pub fn heartbeat_body(epoch: u64, seq: u64, time_ms: u64) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let root = fbs::ReplHeartbeat::create(&mut fbb, &fbs::ReplHeartbeatArgs { epoch, seq, time_ms });
    finish(fbb, root)
}

pub fn decode_heartbeat(b: &[u8]) -> VResult<(u64, u64, u64)> {
    let r = body::decode::<fbs::ReplHeartbeat>(b).map_err(|e| body_error("REPL_HEARTBEAT", e))?;
    Ok((r.epoch(), r.seq(), r.time_ms()))
}

pub fn ack_body(seq: u64) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let root = fbs::ReplAck::create(&mut fbb, &fbs::ReplAckArgs { seq });
    finish(fbb, root)
}

pub fn decode_ack(b: &[u8]) -> VResult<u64> {
    let seq = body::decode::<fbs::ReplAck>(b)
        .map_err(|e| body_error("REPL_ACK", e))?
        .seq();
    check_range(seq, "REPL_ACK seq")
}

/// PROMOTE's `min_epoch`; the new epoch is at least `min_epoch + 1`, which must be in range.
pub fn decode_promote(b: &[u8]) -> VResult<u64> {
    let min_epoch = body::decode::<fbs::PromoteRequest>(b)
        .map_err(|e| body_error("PROMOTE", e))?
        .min_epoch();
    if min_epoch >= MAX_WIRE {
        return Err(VError::invalid(format!(
            "PROMOTE min_epoch + 1 {} is out of range (0 to 2^53 - 1)",
            min_epoch as u128 + 1
        )));
    }
    Ok(min_epoch)
}

pub fn promote_response(epoch: u64, seq: u64) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let root = fbs::PromoteResponse::create(&mut fbb, &fbs::PromoteResponseArgs { epoch, seq });
    finish(fbb, root)
}

pub fn replica_of_request(primary: &str, epoch: u64) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let primary = Some(fbb.create_string(primary));
    let root = fbs::ReplicaOfRequest::create(&mut fbb, &fbs::ReplicaOfRequestArgs { primary, epoch });
    finish(fbb, root)
}

pub fn decode_replica_of(b: &[u8]) -> VResult<(String, u64)> {
    let r = body::decode::<fbs::ReplicaOfRequest>(b).map_err(|e| body_error("REPLICA_OF", e))?;
    Ok((
        r.primary().unwrap_or_default().to_string(),
        check_range(r.epoch(), "REPLICA_OF epoch")?,
    ))
}

pub fn replica_of_response(epoch: u64) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let root = fbs::ReplicaOfResponse::create(&mut fbb, &fbs::ReplicaOfResponseArgs { epoch });
    finish(fbb, root)
}

/// An ErrorResponse body: (code, message, primary, retry_after_ms).
pub fn decode_error(b: &[u8]) -> (ErrorCode, String, String, u32) {
    match body::decode::<fbs::ErrorResponse>(b) {
        Ok(r) => (
            ErrorCode::from_u16(r.code()),
            r.message().unwrap_or_default().to_string(),
            r.primary().unwrap_or_default().to_string(),
            r.retry_after_ms(),
        ),
        Err(e) => (
            ErrorCode::Protocol,
            format!("unreadable ERROR body: {e}"),
            String::new(),
            0,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use velocity_lsm::batch::encode_batch;

    fn rec(v: &str, at: i64) -> Record {
        Record {
            kind: 1,
            value: v.as_bytes().into(),
            expire_at_ms: at,
        }
    }

    #[test]
    fn batches_round_trip_and_refuse_cut_payloads() {
        let a = encode_batch(2, 813, &[velocity_lsm::Mutation::delete(&b"k"[..])]).unwrap();
        let b = encode_batch(
            2,
            814,
            &[velocity_lsm::Mutation::put(
                &b"x"[..],
                velocity_lsm::Record::new(1, &b"y"[..]),
            )],
        )
        .unwrap();
        let mut payload = Vec::new();
        pack_batch(&a, &mut payload);
        pack_batch(&b, &mut payload);
        // The worked example of replication.md, version 2.
        assert_eq!(
            &payload[..30],
            &[
                26, 0, 0, 0, // length
                2, 0, 0, 0, 0, 0, 0, 0, // epoch 2
                0x2d, 3, 0, 0, 0, 0, 0, 0, // seq 813
                1, 0, 0, 0, // one entry
                0, 1, 0, 0, 0, b'k', // delete "k"
            ]
        );
        let got = unpack_batches(&[]).unwrap_err();
        assert!(got.contains("without a batch"));
        let body = batches_body(&payload);
        let got = decode_batches(&body, STREAM_VERSION).unwrap();
        assert_eq!(got, vec![a.clone(), b.clone()]);
        for cut in (1..payload.len()).filter(|&c| c != 30) {
            assert!(unpack_batches(&payload[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(unpack_batches(&payload[..30]).unwrap(), vec![a], "a whole first batch");
    }

    #[test]
    fn snapshot_records_round_trip() {
        let mut payload = Vec::new();
        pack_record(b"a", &rec("1", 0), &mut payload);
        pack_record(b"b", &rec("22", 99), &mut payload);
        let (got, last) = decode_snapshot(&snapshot_body(&payload, true), STREAM_VERSION).unwrap();
        assert!(last);
        assert_eq!(
            got,
            vec![
                (Key::from(&b"a"[..]), rec("1", 0)),
                (Key::from(&b"b"[..]), rec("22", 99))
            ]
        );
        assert!(unpack_records(&payload[..payload.len() - 1]).is_err());
    }

    #[test]
    fn negotiation_names_both_versions() {
        assert_eq!(negotiate(2, "r1").unwrap(), 2);
        let e = negotiate(0, "r1 (vdb://h:1)").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        assert!(
            e.message.contains("version 1") && e.message.contains("version 2"),
            "{}",
            e.message
        );
        assert_eq!(accept(2, "p"), Ok(2));
        // A Python primary (the field absent, or 1): followed through stream_v1.rs.
        assert_eq!(accept(0, "vdb://p:1"), Ok(1));
        assert_eq!(accept(1, "vdb://p:1"), Ok(1));
        let m = accept(3, "p").unwrap_err();
        assert!(m.contains("version 3") && m.contains("versions 1 and 2"), "{m}");
    }

    #[test]
    fn epochs_and_seqs_above_2_pow_53_are_refused() {
        let mut req = SyncRequest {
            node_id: "n".into(),
            endpoint: String::new(),
            epoch: 0,
            seq: u64::MAX,
            full: false,
            node_epoch: 0,
            stream_version: 2,
        };
        let e = decode_sync_request(&sync_request(&req)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        req.seq = MAX_WIRE;
        assert!(decode_sync_request(&sync_request(&req)).is_ok());
        let mut fbb = FlatBufferBuilder::new();
        let root = fbs::PromoteRequest::create(&mut fbb, &fbs::PromoteRequestArgs { min_epoch: MAX_WIRE });
        assert_eq!(
            decode_promote(&finish(fbb, root)).unwrap_err().code,
            ErrorCode::InvalidArgument,
            "the new epoch would be 2^53"
        );
        assert!(decode_replica_of(&replica_of_request("vdb://h:1", u64::MAX)).is_err());
        assert!(decode_ack(&ack_body(MAX_WIRE + 1)).is_err());
    }

    #[test]
    fn sync_messages_round_trip() {
        let req = SyncRequest {
            node_id: "n".into(),
            endpoint: "vdb://h:1".into(),
            epoch: 3,
            seq: 9,
            full: false,
            node_epoch: 4,
            stream_version: STREAM_VERSION,
        };
        assert_eq!(decode_sync_request(&sync_request(&req)).unwrap(), req);
        let resp = SyncResponse {
            full: true,
            epoch: 4,
            seq: 9,
            history: vec![(1, 1), (4, 8)],
            node_id: "p".into(),
            stream_version: 2,
        };
        assert_eq!(decode_sync_response(&sync_response(&resp)).unwrap(), resp);
        // A version-1 node's request (no field) reads as version 0 = 1.
        let mut v1 = req.clone();
        v1.stream_version = 0;
        assert_eq!(
            announced(decode_sync_request(&sync_request(&v1)).unwrap().stream_version),
            1
        );
    }
}
