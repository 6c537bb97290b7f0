//! Both directions of the one codec against each other, for every request and
//! reply type the data plane speaks: client encoder -> server decoder
//! (`body::*_request` -> `server::*_request`) and server encoder -> client
//! decoder (`server::*_response` -> `body::decode`). The shared vectors pin
//! the bytes (tests/vectors.rs); these pin that the two sides agree on every
//! value, including the defaults the canonical encoding omits.

use proptest::prelude::*;
use velocity_proto::body::{self, Cas, EntryRef};
use velocity_proto::{fbs, server, ErrorCode};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é✓]{0,12}"
}

fn kind() -> impl Strategy<Value = u8> {
    0u8..4
}

/// An MGET reply entry, owned: the key, and (kind, value) when found.
type OwnedEntry = (Vec<u8>, Option<(u8, Vec<u8>)>);

/// Reads a byte vector the client decoder returns, absent meaning empty.
fn hx(v: Option<flatbuffers::Vector<'_, u8>>) -> &[u8] {
    v.map(|v| v.bytes()).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    // ---- requests: client encoder -> server decoder -------------------------------

    #[test]
    fn hello_request(token in text(), name in text(), features in any::<u32>()) {
        let b = body::hello_request(&token, &name, features);
        let r = server::hello_request(&b).unwrap();
        prop_assert_eq!((r.protocol_version, r.token, r.client_name, r.features),
                        (velocity_proto::PROTOCOL_VERSION, token.as_str(), name.as_str(), features));
    }

    #[test]
    fn ping_and_info_requests(payload in bytes(40), section in text()) {
        let (ping, info) = (body::ping_request(&payload), body::info_request(&section));
        prop_assert_eq!(server::ping_request(&ping).unwrap(), &payload[..]);
        prop_assert_eq!(server::info_request(&info).unwrap(), section.as_str());
    }

    #[test]
    fn key_incr_expire_requests(key in bytes(40), n in any::<i64>()) {
        let (k, incr, expire) = (body::key_request(&key), body::incr_request(&key, n), body::expire_request(&key, n));
        prop_assert_eq!(server::key_request(&k).unwrap(), &key[..]);
        prop_assert_eq!(server::incr_request(&incr).unwrap(), (&key[..], n));
        prop_assert_eq!(server::expire_request(&expire).unwrap(), (&key[..], n));
    }

    #[test]
    fn set_request(key in bytes(40), value in bytes(80), kind in kind(), ttl in any::<i64>(), cond in 0u8..3) {
        let b = body::set_request(&key, &value, fbs::ValueKind(kind), ttl, fbs::SetCondition(cond));
        prop_assert_eq!(server::set_request(&b).unwrap(),
                        server::SetReq { key: &key, value: &value, kind, ttl_ms: ttl, condition: cond });
    }

    #[test]
    fn cas_request(key in bytes(40), expected in bytes(40), ek in kind(), absent in any::<bool>(),
                   value in bytes(40), k in kind(), ttl in any::<i64>()) {
        let b = body::cas_request(&Cas {
            key: &key, expected: &expected, expected_kind: fbs::ValueKind(ek), expect_absent: absent,
            value: &value, kind: fbs::ValueKind(k), ttl_ms: ttl,
        });
        prop_assert_eq!(server::cas_request(&b).unwrap(), server::CasReq {
            key: &key, expected: &expected, expected_kind: ek, expect_absent: absent,
            value: &value, kind: k, ttl_ms: ttl,
        });
    }

    #[test]
    fn mget_request(keys in prop::collection::vec(bytes(20), 0..8)) {
        let b = body::mget_request(&keys);
        let got = server::mget_request(&b).unwrap();
        let want: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn mset_request(entries in prop::collection::vec((bytes(20), kind(), bytes(20), any::<i64>()), 0..8)) {
        let refs: Vec<EntryRef<'_>> = entries.iter()
            .map(|(k, kind, v, ttl)| EntryRef { key: k, kind: fbs::ValueKind(*kind), value: v, ttl_ms: *ttl })
            .collect();
        let b = body::mset_request(&refs);
        let got = server::mset_request(&b).unwrap();
        let want: Vec<server::EntryReq<'_>> = entries.iter()
            .map(|(k, kind, v, ttl)| server::EntryReq { key: k, kind: *kind, value: v, ttl_ms: *ttl })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn scan_request(prefix in bytes(20), cursor in bytes(20), count in any::<u32>()) {
        let b = body::scan_request(&prefix, &cursor, count);
        let got = server::scan_request(&b).unwrap();
        prop_assert_eq!(got, server::ScanReq { prefix: &prefix, cursor: &cursor, count });
    }

    // ---- replies: server encoder -> client decoder ---------------------------------

    #[test]
    fn get_response(found in any::<bool>(), kind in kind(), value in bytes(80)) {
        let mut out = Vec::new();
        if found {
            server::get_found(kind, &value, &mut out);
        } else {
            server::get_not_found(&mut out);
        }
        let r = body::decode::<fbs::GetResponse>(&out).unwrap();
        prop_assert_eq!(r.found(), found);
        if found {
            prop_assert_eq!((r.kind().0, hx(r.value())), (kind, &value[..]));
        } else {
            prop_assert!(r.kind().0 == 0 && r.value().is_none());
        }
    }

    #[test]
    fn scalar_replies(flag in any::<bool>(), n in any::<i64>()) {
        let mut out = Vec::new();
        server::set_response(flag, &mut out);
        prop_assert_eq!(body::decode::<fbs::SetResponse>(&out).unwrap().applied(), flag);
        out.clear();
        server::bool_response(flag, &mut out);
        prop_assert_eq!(body::decode::<fbs::BoolResponse>(&out).unwrap().value(), flag);
        out.clear();
        server::incr_response(n, &mut out);
        prop_assert_eq!(body::decode::<fbs::IncrResponse>(&out).unwrap().value(), n);
        out.clear();
        server::ttl_response(n, &mut out);
        prop_assert_eq!(body::decode::<fbs::TtlResponse>(&out).unwrap().ttl_ms(), n);
    }

    #[test]
    fn hello_response(version in text(), node in text(), role in 0u8..3, frame in any::<u64>(),
                      key in any::<u32>(), value in any::<u32>(), features in any::<u32>()) {
        let mut out = Vec::new();
        server::hello_response(&server::HelloReply {
            server_version: &version, node_id: &node, role, max_frame_bytes: frame,
            max_key_bytes: key, max_value_bytes: value, features,
        }, &mut out);
        let r = body::decode::<fbs::HelloResponse>(&out).unwrap();
        prop_assert_eq!(r.protocol_version(), velocity_proto::PROTOCOL_VERSION);
        prop_assert_eq!((r.server_version().unwrap_or_default(), r.node_id().unwrap_or_default(), r.role().0),
                        (version.as_str(), node.as_str(), role));
        prop_assert_eq!((r.max_frame_bytes(), r.max_key_bytes(), r.max_value_bytes(), r.features()),
                        (frame, key, value, features));
    }

    #[test]
    fn ping_info_error_replies(payload in bytes(40), json in text(), code in 1u16..30,
                               message in text(), primary in text(), retry in any::<u32>()) {
        let mut out = Vec::new();
        server::ping_response(&payload, &mut out);
        prop_assert_eq!(hx(body::decode::<fbs::PingResponse>(&out).unwrap().payload()), &payload[..]);
        out.clear();
        server::info_response(&json, &mut out);
        prop_assert_eq!(body::decode::<fbs::InfoResponse>(&out).unwrap().json().unwrap_or_default(), json.as_str());
        out.clear();
        server::error_response(code, &message, &primary, retry, &mut out);
        let e = body::decode::<fbs::ErrorResponse>(&out).unwrap();
        prop_assert_eq!((e.code(), e.message().unwrap_or_default(), e.primary().unwrap_or_default(), e.retry_after_ms()),
                        (code, message.as_str(), primary.as_str(), retry));
        // The client-side helper writes the same bytes.
        prop_assert_eq!(body::error_response(ErrorCode::from_u16(code), &message, &primary, retry), out);
    }

    #[test]
    fn cas_response(applied in any::<bool>(), current in prop::option::of((kind(), bytes(40)))) {
        let mut out = Vec::new();
        server::cas_response(applied, current.as_ref().map(|(k, v)| (*k, v.as_slice())), &mut out);
        let r = body::decode::<fbs::CasResponse>(&out).unwrap();
        prop_assert_eq!((r.applied(), r.found()), (applied, current.is_some()));
        let (kind, value) = current.as_ref().map_or((0, &[][..]), |(k, v)| (*k, v.as_slice()));
        prop_assert_eq!((r.kind().0, hx(r.value())), (kind, value));
    }

    #[test]
    fn mget_response(entries in prop::collection::vec((bytes(20), prop::option::of((kind(), bytes(20)))), 0..8)) {
        let refs: Vec<server::MgetEntry<'_>> = entries.iter()
            .map(|(k, v)| (k.as_slice(), v.as_ref().map(|(kind, v)| (*kind, v.as_slice()))))
            .collect();
        let mut out = Vec::new();
        server::mget_response(&refs, &mut out);
        let r = body::decode::<fbs::MGetResponse>(&out).unwrap();
        let got: Vec<OwnedEntry> = r.entries().iter().flatten()
            .map(|e| (hx(e.key()).to_vec(), e.found().then(|| (e.kind().0, hx(e.value()).to_vec()))))
            .collect();
        prop_assert_eq!(got, entries);
    }

    #[test]
    fn scan_response(keys in prop::collection::vec(bytes(20), 0..8), next in bytes(20)) {
        let mut out = Vec::new();
        server::scan_response(&keys, &next, &mut out);
        let r = body::decode::<fbs::ScanResponse>(&out).unwrap();
        let got: Vec<Vec<u8>> = r.keys().iter().flatten().map(|k| hx(k.key()).to_vec()).collect();
        prop_assert_eq!((got, hx(r.next_cursor())), (keys, &next[..]));
    }

    // ---- snapshots, both ways ------------------------------------------------------

    #[test]
    fn snapshot_requests_and_replies(id in text(), offset in any::<u64>(), max in any::<u32>(),
                                     created in any::<i64>(), ready in any::<bool>(), size in any::<u64>(),
                                     data in bytes(80)) {
        // The SDK has no snapshot encoders: the requests are built with the generated builder.
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let root = fbs::SnapshotBeginRequest::create(&mut fbb, &fbs::SnapshotBeginRequestArgs {});
        fbb.finish_minimal(root);
        prop_assert!(server::snapshot_begin_request(fbb.finished_data()).is_ok());
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let snapshot_id = Some(fbb.create_string(&id));
        let root = fbs::SnapshotReadRequest::create(&mut fbb, &fbs::SnapshotReadRequestArgs {
            snapshot_id, offset, max_bytes: max,
        });
        fbb.finish_minimal(root);
        prop_assert_eq!(server::snapshot_read_request(fbb.finished_data()).unwrap(),
                        server::SnapshotReadReq { snapshot_id: &id, offset, max_bytes: max });

        let mut out = Vec::new();
        server::snapshot_begin_response(&id, created, &mut out);
        let r = body::decode::<fbs::SnapshotBeginResponse>(&out).unwrap();
        prop_assert_eq!((r.snapshot_id().unwrap_or_default(), r.created_ms()), (id.as_str(), created.max(0) as u64));
        out.clear();
        server::snapshot_read_response(ready, size, &data, &mut out);
        let r = body::decode::<fbs::SnapshotReadResponse>(&out).unwrap();
        prop_assert_eq!((r.ready(), r.size(), hx(r.data())), (ready, size, &data[..]));
    }
}

/// Empty bodies mean "every field at its default" on both sides.
#[test]
fn empty_bodies_read_as_defaults_on_both_sides() {
    assert_eq!(server::incr_request(&[]).unwrap(), (&b""[..], 1));
    assert_eq!(body::decode::<fbs::IncrRequest>(&[]).unwrap().delta(), 1);
    assert_eq!(server::mget_request(&[]).unwrap(), Vec::<&[u8]>::new());
    let h = server::hello_request(&[]).unwrap();
    assert_eq!((h.protocol_version, h.token, h.features), (0, "", 0));
}
