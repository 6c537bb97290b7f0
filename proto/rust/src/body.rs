//! Message bodies: canonical encoders and a verifying decoder.
//!
//! The encoders produce the canonical layout of docs/formats/protocol.md
//! ("Canonical encoding"): vectors and strings created in field declaration
//! order before their table and omitted when empty, scalars equal to their
//! default omitted, fields added largest first (what the generated `create`
//! does). The vectors test checks them byte for byte against
//! `proto/vectors/frames.json`.

use flatbuffers::{FlatBufferBuilder, Follow, Verifiable, WIPOffset};

use crate::fbs;
use crate::BodyError;

/// The canonical empty table: what an empty body (N = 0) means.
static EMPTY_TABLE: [u8; 12] = [8, 0, 0, 0, 4, 0, 4, 0, 4, 0, 0, 0];

/// Verifies `body` as a `T` table and returns a reader borrowing it.
///
/// An empty body reads as a table whose fields all hold their defaults. Any
/// malformed input (offsets out of range, vectors past the end, invalid UTF-8)
/// is a [`BodyError`], never a panic.
///
/// ```
/// use velocity_proto::{body, fbs};
/// let ping = body::decode::<fbs::PingRequest>(&[]).unwrap();
/// assert!(ping.payload().is_none());
/// assert!(body::decode::<fbs::PingRequest>(&[1, 2, 3]).is_err());
/// ```
pub fn decode<'a, T>(body: &'a [u8]) -> Result<T::Inner, BodyError>
where
    T: Follow<'a> + Verifiable + 'a,
{
    let body: &'a [u8] = if body.is_empty() { &EMPTY_TABLE } else { body };
    flatbuffers::root::<T>(body).map_err(|e| BodyError {
        table: short_name::<T>(),
        reason: e.to_string(),
    })
}

fn short_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// A byte vector, omitted (None) when empty, as the canonical encoding wants.
pub(crate) fn bytes<'b>(fbb: &mut FlatBufferBuilder<'b>, b: &[u8]) -> Option<WIPOffset<flatbuffers::Vector<'b, u8>>> {
    (!b.is_empty()).then(|| fbb.create_vector(b))
}

/// A string, omitted (None) when empty.
pub(crate) fn string<'b>(fbb: &mut FlatBufferBuilder<'b>, s: &str) -> Option<WIPOffset<&'b str>> {
    (!s.is_empty()).then(|| fbb.create_string(s))
}

fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: WIPOffset<T>) -> Vec<u8> {
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

/// A builder sized for a body of about `payload` bytes of keys and values.
pub(crate) fn builder(payload: usize) -> FlatBufferBuilder<'static> {
    FlatBufferBuilder::with_capacity(64 + payload)
}

/// HELLO: protocol version 1, the token, a client name and the feature bits.
///
/// ```
/// let body = velocity_proto::body::hello_request("tok", "me", 0);
/// let hello = velocity_proto::body::decode::<velocity_proto::fbs::HelloRequest>(&body).unwrap();
/// assert_eq!(hello.token(), Some("tok"));
/// ```
pub fn hello_request(token: &str, client_name: &str, features: u32) -> Vec<u8> {
    let mut fbb = builder(token.len() + client_name.len());
    let token = string(&mut fbb, token);
    let client_name = string(&mut fbb, client_name);
    let root = fbs::HelloRequest::create(
        &mut fbb,
        &fbs::HelloRequestArgs {
            protocol_version: crate::PROTOCOL_VERSION,
            token,
            client_name,
            features,
        },
    );
    finish(fbb, root)
}

/// PING with an optional payload (echoed back).
pub fn ping_request(payload: &[u8]) -> Vec<u8> {
    let mut fbb = builder(payload.len());
    let payload = bytes(&mut fbb, payload);
    let root = fbs::PingRequest::create(&mut fbb, &fbs::PingRequestArgs { payload });
    finish(fbb, root)
}

/// INFO, optionally one top-level section (empty: everything).
pub fn info_request(section: &str) -> Vec<u8> {
    let mut fbb = builder(section.len());
    let section = string(&mut fbb, section);
    let root = fbs::InfoRequest::create(&mut fbb, &fbs::InfoRequestArgs { section });
    finish(fbb, root)
}

/// The body of GET, DEL, EXISTS, TTL and PERSIST.
pub fn key_request(key: &[u8]) -> Vec<u8> {
    let mut fbb = builder(key.len());
    let key = bytes(&mut fbb, key);
    let root = fbs::KeyRequest::create(&mut fbb, &fbs::KeyRequestArgs { key });
    finish(fbb, root)
}

/// SET: `ttl_ms` 0 for no expiry; `condition` always, NX or XX.
pub fn set_request(
    key: &[u8],
    value: &[u8],
    kind: fbs::ValueKind,
    ttl_ms: i64,
    condition: fbs::SetCondition,
) -> Vec<u8> {
    let mut fbb = builder(key.len() + value.len());
    let key = bytes(&mut fbb, key);
    let value = bytes(&mut fbb, value);
    let root = fbs::SetRequest::create(
        &mut fbb,
        &fbs::SetRequestArgs {
            key,
            value,
            kind,
            ttl_ms,
            condition,
        },
    );
    finish(fbb, root)
}

/// INCR by a signed `delta` (1 is the default and is omitted).
pub fn incr_request(key: &[u8], delta: i64) -> Vec<u8> {
    let mut fbb = builder(key.len());
    let key = bytes(&mut fbb, key);
    let root = fbs::IncrRequest::create(&mut fbb, &fbs::IncrRequestArgs { key, delta });
    finish(fbb, root)
}

/// EXPIRE in `ttl_ms` (> 0) milliseconds.
pub fn expire_request(key: &[u8], ttl_ms: i64) -> Vec<u8> {
    let mut fbb = builder(key.len());
    let key = bytes(&mut fbb, key);
    let root = fbs::ExpireRequest::create(&mut fbb, &fbs::ExpireRequestArgs { key, ttl_ms });
    finish(fbb, root)
}

/// The fields of a CAS request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cas<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The current value's bytes that must match.
    pub expected: &'a [u8],
    /// The current value's kind that must match.
    pub expected_kind: fbs::ValueKind,
    /// Succeed only if the key does not exist (then `expected` is ignored).
    pub expect_absent: bool,
    /// The new value.
    pub value: &'a [u8],
    /// The new value's kind.
    pub kind: fbs::ValueKind,
    /// Expiry of the new value in ms, 0 for none.
    pub ttl_ms: i64,
}

/// CAS: compare-and-set.
pub fn cas_request(c: &Cas<'_>) -> Vec<u8> {
    let mut fbb = builder(c.key.len() + c.expected.len() + c.value.len());
    let key = bytes(&mut fbb, c.key);
    let expected = bytes(&mut fbb, c.expected);
    let value = bytes(&mut fbb, c.value);
    let root = fbs::CasRequest::create(
        &mut fbb,
        &fbs::CasRequestArgs {
            key,
            expected,
            expected_kind: c.expected_kind,
            expect_absent: c.expect_absent,
            value,
            kind: c.kind,
            ttl_ms: c.ttl_ms,
        },
    );
    finish(fbb, root)
}

/// MGET of `keys`, answered in the same order.
pub fn mget_request<K: AsRef<[u8]>>(keys: &[K]) -> Vec<u8> {
    let mut fbb = builder(keys.iter().map(|k| k.as_ref().len() + 16).sum());
    let offsets: Vec<_> = keys
        .iter()
        .map(|k| {
            let key = bytes(&mut fbb, k.as_ref());
            fbs::Key::create(&mut fbb, &fbs::KeyArgs { key })
        })
        .collect();
    let keys = fbb.create_vector(&offsets);
    let root = fbs::MGetRequest::create(&mut fbb, &fbs::MGetRequestArgs { keys: Some(keys) });
    finish(fbb, root)
}

/// One MSET entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value's kind.
    pub kind: fbs::ValueKind,
    /// The value's bytes.
    pub value: &'a [u8],
    /// Expiry in ms, 0 for none.
    pub ttl_ms: i64,
}

/// MSET: every entry written atomically, or none.
pub fn mset_request(entries: &[EntryRef<'_>]) -> Vec<u8> {
    let mut fbb = builder(entries.iter().map(|e| e.key.len() + e.value.len() + 32).sum());
    let offsets: Vec<_> = entries
        .iter()
        .map(|e| {
            let key = bytes(&mut fbb, e.key);
            let value = bytes(&mut fbb, e.value);
            fbs::Entry::create(
                &mut fbb,
                &fbs::EntryArgs {
                    key,
                    found: false,
                    kind: e.kind,
                    value,
                    ttl_ms: e.ttl_ms,
                },
            )
        })
        .collect();
    let entries = fbb.create_vector(&offsets);
    let root = fbs::MSetRequest::create(&mut fbb, &fbs::MSetRequestArgs { entries: Some(entries) });
    finish(fbb, root)
}

/// SCAN keys starting with `prefix`, strictly after `cursor`, `count` per page (0: server default).
pub fn scan_request(prefix: &[u8], cursor: &[u8], count: u32) -> Vec<u8> {
    let mut fbb = builder(prefix.len() + cursor.len());
    let prefix = bytes(&mut fbb, prefix);
    let cursor = bytes(&mut fbb, cursor);
    let root = fbs::ScanRequest::create(&mut fbb, &fbs::ScanRequestArgs { prefix, cursor, count });
    finish(fbb, root)
}

/// An ERROR reply body (servers; also handy for client tests).
///
/// The same bytes as [`crate::server::error_response`], in a `Vec` of its own.
pub fn error_response(code: crate::ErrorCode, message: &str, primary: &str, retry_after_ms: u32) -> Vec<u8> {
    let mut out = Vec::new();
    crate::server::error_response(code.as_u16(), message, primary, retry_after_ms, &mut out);
    out
}
