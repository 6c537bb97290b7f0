//! The server direction: request bodies in, reply bodies out.
//!
//! The mirror of [`crate::body`] (which encodes requests and reads replies for
//! clients), used by the engine's native core (velocity-core re-exports it as
//! `velocity_core::codec`). Both directions are tested against each other and
//! against `proto/vectors/frames.json` in this crate (tests/round_trip.rs,
//! tests/vectors.rs).
//!
//! Decoders read untrusted bodies through [`crate::reader::Table`] and borrow every
//! key, value and string from the receive buffer (no copy, no allocation for
//! the single-key opcodes). They read every field of the table in declaration
//! order, as the Python engine's `Message.decode` does, so a malformed field is
//! refused even when the operation would not use it. A refused body is a
//! [`BodyError`] naming the table, whose `reason` is the Python reader's message.
//!
//! Encoders append a reply body to the connection's output buffer in the
//! canonical layout of docs/formats/protocol.md ("Canonical encoding"). The hot
//! replies (GET found, INCR, TTL, the boolean ones) are written by hand from
//! templates the generated builder produced once at start; the rest go through
//! the generated FlatBuffers builder (tests check the two agree byte for byte).
//!
//! Kinds, conditions and roles are carried as their wire bytes (`u8`): the
//! server checks their range itself and answers `INVALID_ARGUMENT`.
//!
//! ```
//! use velocity_proto::{body, fbs, server};
//! let req = body::incr_request(b"n", 2);
//! assert_eq!(server::incr_request(&req).unwrap(), (&b"n"[..], 2));
//! let mut out = Vec::new();
//! server::incr_response(42, &mut out);
//! assert_eq!(body::decode::<fbs::IncrResponse>(&out).unwrap().value(), 42);
//! ```

use std::sync::OnceLock;

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::body::{builder, bytes, string};
use crate::reader::{ReadResult, Table};
use crate::{fbs, BodyError};

/// Reads the root table of a `table` body with `read`, naming the table in any error.
#[inline]
fn decode<'a, T>(
    table: &'static str,
    body: &'a [u8],
    read: impl FnOnce(Table<'a>) -> ReadResult<T>,
) -> Result<T, BodyError> {
    Table::root(body).and_then(read).map_err(|e| e.in_table(table))
}

/// A SET (0x11) request, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetReq<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value's bytes.
    pub value: &'a [u8],
    /// The value's kind (`ValueKind`, unchecked).
    pub kind: u8,
    /// Expiry in ms, 0 for none.
    pub ttl_ms: i64,
    /// Always, NX or XX (`SetCondition`, unchecked).
    pub condition: u8,
}

/// A CAS (0x18) request, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasReq<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The bytes the current value must hold.
    pub expected: &'a [u8],
    /// The kind the current value must have.
    pub expected_kind: u8,
    /// Succeed only if the key does not exist.
    pub expect_absent: bool,
    /// The new value's bytes.
    pub value: &'a [u8],
    /// The new value's kind.
    pub kind: u8,
    /// Expiry of the new value in ms, 0 for none.
    pub ttl_ms: i64,
}

/// One MSET entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryReq<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value's kind.
    pub kind: u8,
    /// The value's bytes.
    pub value: &'a [u8],
    /// Expiry in ms, 0 for none.
    pub ttl_ms: i64,
}

/// A HELLO (0x01) request, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloReq<'a> {
    /// The client's protocol version (0 when absent).
    pub protocol_version: u16,
    /// The credential.
    pub token: &'a str,
    /// A name for logs and INFO.
    pub client_name: &'a str,
    /// Feature bits the client accepts ([`crate::FEATURE_ZSTD`]).
    pub features: u32,
}

/// A SCAN (0x22) request, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanReq<'a> {
    /// Keys starting with these bytes.
    pub prefix: &'a [u8],
    /// Keys strictly after this one (empty: from the start).
    pub cursor: &'a [u8],
    /// Keys per page, 0 for the server's default.
    pub count: u32,
}

// ---- decoders ---------------------------------------------------------------

/// KeyRequest: GET, DEL, EXISTS, TTL, PERSIST.
pub fn key_request(body: &[u8]) -> Result<&[u8], BodyError> {
    decode("KeyRequest", body, |t| t.bytes(0))
}

/// SetRequest.
pub fn set_request(body: &[u8]) -> Result<SetReq<'_>, BodyError> {
    decode("SetRequest", body, |t| {
        Ok(SetReq {
            key: t.bytes(0)?,
            value: t.bytes(1)?,
            kind: t.u8(2, 0)?,
            ttl_ms: t.i64(3, 0)?,
            condition: t.u8(4, 0)?,
        })
    })
}

/// IncrRequest: (key, delta); delta defaults to 1.
pub fn incr_request(body: &[u8]) -> Result<(&[u8], i64), BodyError> {
    decode("IncrRequest", body, |t| Ok((t.bytes(0)?, t.i64(1, 1)?)))
}

/// ExpireRequest: (key, ttl_ms).
pub fn expire_request(body: &[u8]) -> Result<(&[u8], i64), BodyError> {
    decode("ExpireRequest", body, |t| Ok((t.bytes(0)?, t.i64(1, 0)?)))
}

/// CasRequest.
pub fn cas_request(body: &[u8]) -> Result<CasReq<'_>, BodyError> {
    decode("CasRequest", body, |t| {
        Ok(CasReq {
            key: t.bytes(0)?,
            expected: t.bytes(1)?,
            expected_kind: t.u8(2, 0)?,
            expect_absent: t.bool(3)?,
            value: t.bytes(4)?,
            kind: t.u8(5, 0)?,
            ttl_ms: t.i64(6, 0)?,
        })
    })
}

/// MGetRequest: the keys, in order.
pub fn mget_request(body: &[u8]) -> Result<Vec<&[u8]>, BodyError> {
    decode("MGetRequest", body, |t| {
        t.tables(0)?.iter().map(|k| k.bytes(0)).collect()
    })
}

/// MSetRequest: the entries, in order (Entry.found is read and ignored).
pub fn mset_request(body: &[u8]) -> Result<Vec<EntryReq<'_>>, BodyError> {
    decode("MSetRequest", body, |t| {
        t.tables(0)?
            .iter()
            .map(|e| {
                let key = e.bytes(0)?;
                e.bool(1)?;
                Ok(EntryReq {
                    key,
                    kind: e.u8(2, 0)?,
                    value: e.bytes(3)?,
                    ttl_ms: e.i64(4, 0)?,
                })
            })
            .collect()
    })
}

/// ScanRequest.
pub fn scan_request(body: &[u8]) -> Result<ScanReq<'_>, BodyError> {
    decode("ScanRequest", body, |t| {
        Ok(ScanReq {
            prefix: t.bytes(0)?,
            cursor: t.bytes(1)?,
            count: t.u32(2, 0)?,
        })
    })
}

/// HelloRequest.
pub fn hello_request(body: &[u8]) -> Result<HelloReq<'_>, BodyError> {
    decode("HelloRequest", body, |t| {
        Ok(HelloReq {
            protocol_version: t.u16(0, 0)?,
            token: t.string(1)?,
            client_name: t.string(2)?,
            features: t.u32(3, 0)?,
        })
    })
}

/// PingRequest: the payload.
pub fn ping_request(body: &[u8]) -> Result<&[u8], BodyError> {
    decode("PingRequest", body, |t| t.bytes(0))
}

/// InfoRequest: the section ("" for all).
pub fn info_request(body: &[u8]) -> Result<&str, BodyError> {
    decode("InfoRequest", body, |t| t.string(0))
}

/// A SNAPSHOT_READ (0x31) request, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotReadReq<'a> {
    /// The id SNAPSHOT_BEGIN returned.
    pub snapshot_id: &'a str,
    /// Byte offset into the snapshot file.
    pub offset: u64,
    /// The most bytes to return, 0 for the server's default.
    pub max_bytes: u32,
}

/// SnapshotBeginRequest: an empty table (checked all the same).
pub fn snapshot_begin_request(body: &[u8]) -> Result<(), BodyError> {
    decode("SnapshotBeginRequest", body, |_| Ok(()))
}

/// SnapshotReadRequest.
pub fn snapshot_read_request(body: &[u8]) -> Result<SnapshotReadReq<'_>, BodyError> {
    decode("SnapshotReadRequest", body, |t| {
        Ok(SnapshotReadReq {
            snapshot_id: t.string(0)?,
            // `offset:ulong`: the same eight bytes.
            offset: t.i64(1, 0)? as u64,
            max_bytes: t.u32(2, 0)?,
        })
    })
}

// ---- encoders: the generated builder ------------------------------------------

/// Finishes the body (minimal: no size prefix, no file identifier) and appends it to `out`.
fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: WIPOffset<T>, out: &mut Vec<u8>) {
    fbb.finish_minimal(root);
    out.extend_from_slice(fbb.finished_data());
}

/// ErrorResponse; `code` is the wire number ([`crate::ErrorCode::as_u16`]).
pub fn error_response(code: u16, message: &str, primary: &str, retry_after_ms: u32, out: &mut Vec<u8>) {
    let mut fbb = builder(message.len() + primary.len());
    let message = string(&mut fbb, message);
    let primary = string(&mut fbb, primary);
    let root = fbs::ErrorResponse::create(
        &mut fbb,
        &fbs::ErrorResponseArgs {
            code,
            message,
            primary,
            retry_after_ms,
        },
    );
    finish(fbb, root, out);
}

/// The fields of a HelloResponse.
#[derive(Debug, Clone, Copy)]
pub struct HelloReply<'a> {
    /// The engine's version string.
    pub server_version: &'a str,
    /// This node's id.
    pub node_id: &'a str,
    /// The node's role (`Role`).
    pub role: u8,
    /// The frame body limit.
    pub max_frame_bytes: u64,
    /// The key limit.
    pub max_key_bytes: u32,
    /// The value limit.
    pub max_value_bytes: u32,
    /// Feature bits granted.
    pub features: u32,
}

/// HelloResponse (protocol version 1).
pub fn hello_response(h: &HelloReply<'_>, out: &mut Vec<u8>) {
    let mut fbb = builder(h.server_version.len() + h.node_id.len());
    let server_version = string(&mut fbb, h.server_version);
    let node_id = string(&mut fbb, h.node_id);
    let root = fbs::HelloResponse::create(
        &mut fbb,
        &fbs::HelloResponseArgs {
            protocol_version: crate::PROTOCOL_VERSION,
            server_version,
            node_id,
            role: fbs::Role(h.role),
            max_frame_bytes: h.max_frame_bytes,
            max_key_bytes: h.max_key_bytes,
            max_value_bytes: h.max_value_bytes,
            features: h.features,
        },
    );
    finish(fbb, root, out);
}

/// PingResponse: the request's payload, echoed.
pub fn ping_response(payload: &[u8], out: &mut Vec<u8>) {
    let mut fbb = builder(payload.len());
    let payload = bytes(&mut fbb, payload);
    let root = fbs::PingResponse::create(&mut fbb, &fbs::PingResponseArgs { payload });
    finish(fbb, root, out);
}

/// InfoResponse: the INFO document as JSON.
pub fn info_response(json: &str, out: &mut Vec<u8>) {
    let mut fbb = builder(json.len());
    let json = string(&mut fbb, json);
    let root = fbs::InfoResponse::create(&mut fbb, &fbs::InfoResponseArgs { json });
    finish(fbb, root, out);
}

/// SnapshotBeginResponse; a negative `created_ms` is sent as 0.
pub fn snapshot_begin_response(snapshot_id: &str, created_ms: i64, out: &mut Vec<u8>) {
    let mut fbb = builder(snapshot_id.len());
    let snapshot_id = string(&mut fbb, snapshot_id);
    let root = fbs::SnapshotBeginResponse::create(
        &mut fbb,
        &fbs::SnapshotBeginResponseArgs {
            snapshot_id,
            created_ms: created_ms.max(0) as u64,
        },
    );
    finish(fbb, root, out);
}

/// SnapshotReadResponse: one chunk of the snapshot file, or `ready` false while it is written.
pub fn snapshot_read_response(ready: bool, size: u64, data: &[u8], out: &mut Vec<u8>) {
    let mut fbb = builder(data.len());
    let data = bytes(&mut fbb, data);
    let root = fbs::SnapshotReadResponse::create(&mut fbb, &fbs::SnapshotReadResponseArgs { ready, size, data });
    finish(fbb, root, out);
}

/// GetResponse through the builder (the reference for [`get_found`]).
pub fn get_response_reference(found: bool, kind: u8, value: &[u8], out: &mut Vec<u8>) {
    let mut fbb = builder(value.len());
    let value = bytes(&mut fbb, value);
    let root = fbs::GetResponse::create(
        &mut fbb,
        &fbs::GetResponseArgs {
            found,
            kind: fbs::ValueKind(kind),
            value,
        },
    );
    finish(fbb, root, out);
}

/// CasResponse: `current` is the value found when not applied.
pub fn cas_response(applied: bool, current: Option<(u8, &[u8])>, out: &mut Vec<u8>) {
    let (found, kind, value) = current.map_or((false, 0, &[][..]), |(k, v)| (true, k, v));
    let mut fbb = builder(value.len());
    let value = bytes(&mut fbb, value);
    let root = fbs::CasResponse::create(
        &mut fbb,
        &fbs::CasResponseArgs {
            applied,
            found,
            kind: fbs::ValueKind(kind),
            value,
        },
    );
    finish(fbb, root, out);
}

/// A value as a reply carries it: (kind, bytes).
pub type ValueRef<'a> = (u8, &'a [u8]);

/// One MGET reply entry: the key, and its value when found.
pub type MgetEntry<'a> = (&'a [u8], Option<ValueRef<'a>>);

/// MGetResponse: one entry per key; `None` for a missing key.
pub fn mget_response(entries: &[MgetEntry<'_>], out: &mut Vec<u8>) {
    let size = entries
        .iter()
        .map(|(k, v)| k.len() + v.map_or(0, |(_, v)| v.len()) + 48)
        .sum();
    let mut fbb = builder(size);
    let offsets: Vec<_> = entries
        .iter()
        .map(|(key, rec)| {
            let (found, kind, value) = rec.map_or((false, 0, &[][..]), |(k, v)| (true, k, v));
            let key = bytes(&mut fbb, key);
            let value = bytes(&mut fbb, value);
            fbs::Entry::create(
                &mut fbb,
                &fbs::EntryArgs {
                    key,
                    found,
                    kind: fbs::ValueKind(kind),
                    value,
                    ttl_ms: 0,
                },
            )
        })
        .collect();
    let entries = (!offsets.is_empty()).then(|| fbb.create_vector(&offsets));
    let root = fbs::MGetResponse::create(&mut fbb, &fbs::MGetResponseArgs { entries });
    finish(fbb, root, out);
}

/// ScanResponse: the keys of a page and the cursor ("" when done).
pub fn scan_response<K: AsRef<[u8]>>(keys: &[K], next_cursor: &[u8], out: &mut Vec<u8>) {
    let size = keys.iter().map(|k| k.as_ref().len() + 24).sum::<usize>() + next_cursor.len();
    let mut fbb = builder(size);
    let offsets: Vec<_> = keys
        .iter()
        .map(|k| {
            let key = bytes(&mut fbb, k.as_ref());
            fbs::Key::create(&mut fbb, &fbs::KeyArgs { key })
        })
        .collect();
    let keys = (!offsets.is_empty()).then(|| fbb.create_vector(&offsets));
    let next_cursor = bytes(&mut fbb, next_cursor);
    let root = fbs::ScanResponse::create(&mut fbb, &fbs::ScanResponseArgs { keys, next_cursor });
    finish(fbb, root, out);
}

fn bool_body(value: bool) -> Vec<u8> {
    let mut fbb = builder(0);
    let root = fbs::BoolResponse::create(&mut fbb, &fbs::BoolResponseArgs { value });
    let mut out = Vec::new();
    finish(fbb, root, &mut out);
    out
}

fn set_body(applied: bool) -> Vec<u8> {
    let mut fbb = builder(0);
    let root = fbs::SetResponse::create(&mut fbb, &fbs::SetResponseArgs { applied });
    let mut out = Vec::new();
    finish(fbb, root, &mut out);
    out
}

fn incr_body(value: i64) -> Vec<u8> {
    let mut fbb = builder(0);
    let root = fbs::IncrResponse::create(&mut fbb, &fbs::IncrResponseArgs { value });
    let mut out = Vec::new();
    finish(fbb, root, &mut out);
    out
}

fn ttl_body(ttl_ms: i64) -> Vec<u8> {
    let mut fbb = builder(0);
    let root = fbs::TtlResponse::create(&mut fbb, &fbs::TtlResponseArgs { ttl_ms });
    let mut out = Vec::new();
    finish(fbb, root, &mut out);
    out
}

// ---- encoders: the hot replies, by hand ---------------------------------------

/// A reply whose only field is one 8-byte scalar: the builder's encoding of a
/// probe value is the template for every non-zero value (zero is omitted).
struct I64Template {
    zero: Vec<u8>,
    template: Vec<u8>,
    at: usize,
}

impl I64Template {
    fn new(encode: fn(i64) -> Vec<u8>) -> Self {
        const PROBE: i64 = 0x0102_0304_0506_0708;
        let template = encode(PROBE);
        let at = template
            .windows(8)
            .position(|w| w == PROBE.to_le_bytes())
            .expect("the probe value is in its encoding");
        Self {
            zero: encode(0),
            template,
            at,
        }
    }

    fn write(&self, value: i64, out: &mut Vec<u8>) {
        if value == 0 {
            out.extend_from_slice(&self.zero);
            return;
        }
        let start = out.len();
        out.extend_from_slice(&self.template);
        out[start + self.at..start + self.at + 8].copy_from_slice(&value.to_le_bytes());
    }
}

struct Constants {
    bool_true: Vec<u8>,
    bool_false: Vec<u8>,
    set_applied: Vec<u8>,
    set_not_applied: Vec<u8>,
    get_not_found: Vec<u8>,
    incr: I64Template,
    ttl: I64Template,
}

fn constants() -> &'static Constants {
    static C: OnceLock<Constants> = OnceLock::new();
    C.get_or_init(|| {
        let mut get_not_found = Vec::new();
        get_response_reference(false, 0, &[], &mut get_not_found);
        Constants {
            bool_true: bool_body(true),
            bool_false: bool_body(false),
            set_applied: set_body(true),
            set_not_applied: set_body(false),
            get_not_found,
            incr: I64Template::new(incr_body),
            ttl: I64Template::new(ttl_body),
        }
    })
}

/// BoolResponse (DEL, EXISTS, EXPIRE, PERSIST, MSET).
pub fn bool_response(value: bool, out: &mut Vec<u8>) {
    let c = constants();
    out.extend_from_slice(if value { &c.bool_true } else { &c.bool_false });
}

/// SetResponse.
pub fn set_response(applied: bool, out: &mut Vec<u8>) {
    let c = constants();
    out.extend_from_slice(if applied { &c.set_applied } else { &c.set_not_applied });
}

/// IncrResponse.
pub fn incr_response(value: i64, out: &mut Vec<u8>) {
    constants().incr.write(value, out);
}

/// TtlResponse.
pub fn ttl_response(ttl_ms: i64, out: &mut Vec<u8>) {
    constants().ttl.write(ttl_ms, out);
}

/// GetResponse for a missing key.
pub fn get_not_found(out: &mut Vec<u8>) {
    out.extend_from_slice(&constants().get_not_found);
}

/// GetResponse{found, kind, value} for a found key, written by hand:
///
/// ```text
/// root=16 | pad2 | vtable(10: 10, 12, vo_found, vo_kind, 8) | soff=10 | pad | [kind] found
///         | uoff=4 | len | value | pad to 4
/// ```
///
/// (kind 0 is the default and is omitted, which moves `found` one byte up). An
/// empty value takes the builder (the vector is omitted then).
pub fn get_found(kind: u8, value: &[u8], out: &mut Vec<u8>) {
    let n = value.len();
    if n == 0 || u32::try_from(n).is_err() {
        get_response_reference(true, kind, value, out);
        return;
    }
    let start = out.len();
    out.reserve(32 + n + 3);
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    let (vo_found, vo_kind) = if kind != 0 { (6u16, 7u16) } else { (7, 0) };
    for h in [10u16, 12, vo_found, vo_kind, 8] {
        out.extend_from_slice(&h.to_le_bytes());
    }
    out.extend_from_slice(&10i32.to_le_bytes());
    if kind != 0 {
        out.extend_from_slice(&[0, 0, 1, kind]);
    } else {
        out.extend_from_slice(&[0, 0, 0, 1]);
    }
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (n.wrapping_neg() & 3), 0);
    debug_assert_eq!(out.len() - start, 32 + n + (n.wrapping_neg() & 3));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{body, ErrorCode};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hand_written_get_reply_is_the_canonical_one(kind in 0u8..5, value in proptest::collection::vec(any::<u8>(), 0..70)) {
            let mut hand = Vec::new();
            get_found(kind, &value, &mut hand);
            let mut reference = Vec::new();
            get_response_reference(true, kind, &value, &mut reference);
            prop_assert_eq!(hand, reference);
        }

        #[test]
        fn incr_and_ttl_templates_match_the_builder(v in any::<i64>()) {
            let mut a = Vec::new();
            incr_response(v, &mut a);
            prop_assert_eq!(a, incr_body(v));
            let mut b = Vec::new();
            ttl_response(v, &mut b);
            prop_assert_eq!(b, ttl_body(v));
        }

        #[test]
        fn set_request_round_trips(key in proptest::collection::vec(any::<u8>(), 0..40),
                                   value in proptest::collection::vec(any::<u8>(), 0..40),
                                   kind in 0u8..4, ttl in any::<i64>(), cond in 0u8..3) {
            let b = body::set_request(&key, &value, fbs::ValueKind(kind), ttl, fbs::SetCondition(cond));
            let r = set_request(&b).unwrap();
            prop_assert_eq!(r, SetReq { key: &key, value: &value, kind, ttl_ms: ttl, condition: cond });
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = key_request(&bytes);
            let _ = set_request(&bytes);
            let _ = cas_request(&bytes);
            let _ = mget_request(&bytes);
            let _ = mset_request(&bytes);
            let _ = scan_request(&bytes);
            let _ = hello_request(&bytes);
        }
    }

    #[test]
    fn multi_key_requests_decode() {
        let b = body::mget_request(&[b"a".as_ref(), b"bc"]);
        assert_eq!(mget_request(&b).unwrap(), vec![&b"a"[..], b"bc"]);
        let e = [body::EntryRef {
            key: b"k",
            kind: fbs::ValueKind::Int,
            value: &7i64.to_le_bytes(),
            ttl_ms: 5,
        }];
        let mset = body::mset_request(&e);
        let got = mset_request(&mset).unwrap();
        assert_eq!(got[0].key, b"k");
        assert_eq!((got[0].kind, got[0].ttl_ms), (2, 5));
        let hello = body::hello_request("tok", "me", 1);
        let h = hello_request(&hello).unwrap();
        assert_eq!(
            (h.protocol_version, h.token, h.client_name, h.features),
            (1, "tok", "me", 1)
        );
        let scan = body::scan_request(b"p", b"pc", 7);
        let s = scan_request(&scan).unwrap();
        assert_eq!((s.prefix, s.cursor, s.count), (&b"p"[..], &b"pc"[..], 7));
    }

    #[test]
    fn replies_read_back_with_the_generated_code() {
        let mut out = Vec::new();
        mget_response(&[(b"a", Some((1, b"x"))), (b"b", None)], &mut out);
        let r = body::decode::<fbs::MGetResponse>(&out).unwrap();
        let e: Vec<_> = r.entries().unwrap().iter().collect();
        assert!(e[0].found() && e[0].value().unwrap().bytes() == b"x");
        assert!(!e[1].found());
        out.clear();
        scan_response(&[b"k1", b"k2"], b"k2", &mut out);
        let s = body::decode::<fbs::ScanResponse>(&out).unwrap();
        assert_eq!(s.keys().unwrap().len(), 2);
        assert_eq!(s.next_cursor().unwrap().bytes(), b"k2");
        out.clear();
        cas_response(false, Some((3, b"{}")), &mut out);
        let c = body::decode::<fbs::CasResponse>(&out).unwrap();
        assert!(!c.applied() && c.found() && c.kind() == fbs::ValueKind::Json);
    }

    #[test]
    fn a_refused_body_names_its_table_and_keeps_the_readers_words() {
        let e = set_request(&[1, 2]).unwrap_err();
        assert_eq!((e.table, e.code()), ("SetRequest", ErrorCode::Protocol));
        assert_eq!(e.reason, "body of 2 bytes is too short for a FlatBuffer");
        let mut b = body::key_request(b"abcd");
        let n = b.len();
        b[n - 8] = 200;
        assert_eq!(
            key_request(&b).unwrap_err().reason,
            "vector in field 0 runs past the body"
        );
    }
}
