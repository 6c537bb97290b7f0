//! proto/vectors/frames.json: every valid frame decodes to its fields and
//! re-encodes to the same bytes; every invalid frame is refused with its code.
//!
//! Both directions of the codec: the client's (request encoders, the verifying
//! reply decoder) and the server's (the zero-copy request decoders, the reply
//! encoders with their hand-written hot paths), each against the same vectors,
//! so the native core answers the bytes the Python engine answers.

use serde_json::{json, Value};
use velocity_proto::body::{self, Cas, EntryRef};
use velocity_proto::{fbs, frame, server, ErrorCode, Opcode};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/frames.json");
    let text = std::fs::read_to_string(path).expect("proto/vectors/frames.json");
    serde_json::from_str(&text).expect("frames.json is JSON")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hx(v: Option<flatbuffers::Vector<'_, u8>>) -> Value {
    Value::String(hex(v.map(|v| v.bytes()).unwrap_or_default()))
}

fn st(v: Option<&str>) -> Value {
    Value::String(v.unwrap_or_default().to_owned())
}

/// 64-bit integers beyond 2^53 are decimal strings in the vectors.
fn n64(v: i128) -> Value {
    if v.unsigned_abs() > (1u128 << 53) {
        Value::String(v.to_string())
    } else {
        json!(v as i64)
    }
}

fn fields(message: &str, b: &[u8]) -> Value {
    use body::decode as d;
    match message {
        "HelloRequest" => {
            let m = d::<fbs::HelloRequest>(b).unwrap();
            json!({"protocol_version": m.protocol_version(), "token": st(m.token()),
                   "client_name": st(m.client_name()), "features": m.features()})
        }
        "HelloResponse" => {
            let m = d::<fbs::HelloResponse>(b).unwrap();
            json!({"protocol_version": m.protocol_version(), "server_version": st(m.server_version()),
                   "node_id": st(m.node_id()), "role": m.role().0, "max_frame_bytes": n64(m.max_frame_bytes().into()),
                   "max_key_bytes": m.max_key_bytes(), "max_value_bytes": m.max_value_bytes(), "features": m.features()})
        }
        "PingRequest" => json!({"payload": hx(d::<fbs::PingRequest>(b).unwrap().payload())}),
        "PingResponse" => json!({"payload": hx(d::<fbs::PingResponse>(b).unwrap().payload())}),
        "KeyRequest" => json!({"key": hx(d::<fbs::KeyRequest>(b).unwrap().key())}),
        "BoolResponse" => json!({"value": d::<fbs::BoolResponse>(b).unwrap().value()}),
        "GetResponse" => {
            let m = d::<fbs::GetResponse>(b).unwrap();
            json!({"found": m.found(), "kind": m.kind().0, "value": hx(m.value())})
        }
        "SetRequest" => {
            let m = d::<fbs::SetRequest>(b).unwrap();
            json!({"key": hx(m.key()), "value": hx(m.value()), "kind": m.kind().0,
                   "ttl_ms": n64(m.ttl_ms().into()), "condition": m.condition().0})
        }
        "SetResponse" => json!({"applied": d::<fbs::SetResponse>(b).unwrap().applied()}),
        "IncrRequest" => {
            let m = d::<fbs::IncrRequest>(b).unwrap();
            json!({"key": hx(m.key()), "delta": n64(m.delta().into())})
        }
        "IncrResponse" => json!({"value": n64(d::<fbs::IncrResponse>(b).unwrap().value().into())}),
        "ExpireRequest" => {
            let m = d::<fbs::ExpireRequest>(b).unwrap();
            json!({"key": hx(m.key()), "ttl_ms": n64(m.ttl_ms().into())})
        }
        "TtlResponse" => json!({"ttl_ms": n64(d::<fbs::TtlResponse>(b).unwrap().ttl_ms().into())}),
        "CasRequest" => {
            let m = d::<fbs::CasRequest>(b).unwrap();
            json!({"key": hx(m.key()), "expected": hx(m.expected()), "expected_kind": m.expected_kind().0,
                   "expect_absent": m.expect_absent(), "value": hx(m.value()), "kind": m.kind().0,
                   "ttl_ms": n64(m.ttl_ms().into())})
        }
        "CasResponse" => {
            let m = d::<fbs::CasResponse>(b).unwrap();
            json!({"applied": m.applied(), "found": m.found(), "kind": m.kind().0, "value": hx(m.value())})
        }
        "MGetRequest" => {
            let m = d::<fbs::MGetRequest>(b).unwrap();
            let keys: Vec<Value> = m.keys().unwrap().iter().map(|k| json!({"key": hx(k.key())})).collect();
            json!({"keys": keys})
        }
        "MGetResponse" | "MSetRequest" => {
            let entries = if message == "MGetResponse" {
                d::<fbs::MGetResponse>(b).unwrap().entries()
            } else {
                d::<fbs::MSetRequest>(b).unwrap().entries()
            };
            let e: Vec<Value> = entries
                .unwrap()
                .iter()
                .map(|e| {
                    json!({"key": hx(e.key()), "found": e.found(), "kind": e.kind().0,
                           "value": hx(e.value()), "ttl_ms": n64(e.ttl_ms().into())})
                })
                .collect();
            json!({"entries": e})
        }
        "ScanRequest" => {
            let m = d::<fbs::ScanRequest>(b).unwrap();
            json!({"prefix": hx(m.prefix()), "cursor": hx(m.cursor()), "count": m.count()})
        }
        "ScanResponse" => {
            let m = d::<fbs::ScanResponse>(b).unwrap();
            let keys: Vec<Value> = m.keys().unwrap().iter().map(|k| json!({"key": hx(k.key())})).collect();
            json!({"keys": keys, "next_cursor": hx(m.next_cursor())})
        }
        "InfoRequest" => json!({"section": st(d::<fbs::InfoRequest>(b).unwrap().section())}),
        "InfoResponse" => json!({"json": st(d::<fbs::InfoResponse>(b).unwrap().json())}),
        "ErrorResponse" => {
            let m = d::<fbs::ErrorResponse>(b).unwrap();
            json!({"code": m.code(), "message": st(m.message()), "primary": st(m.primary()),
                   "retry_after_ms": m.retry_after_ms()})
        }
        "SnapshotBeginRequest" => {
            d::<fbs::SnapshotBeginRequest>(b).unwrap();
            json!({})
        }
        "SnapshotBeginResponse" => {
            let m = d::<fbs::SnapshotBeginResponse>(b).unwrap();
            json!({"snapshot_id": st(m.snapshot_id()), "created_ms": n64(m.created_ms().into())})
        }
        "SnapshotReadRequest" => {
            let m = d::<fbs::SnapshotReadRequest>(b).unwrap();
            json!({"snapshot_id": st(m.snapshot_id()), "offset": n64(m.offset().into()), "max_bytes": m.max_bytes()})
        }
        "SnapshotReadResponse" => {
            let m = d::<fbs::SnapshotReadResponse>(b).unwrap();
            json!({"ready": m.ready(), "size": n64(m.size().into()), "data": hx(m.data())})
        }
        "ReplSyncRequest" => {
            let m = d::<fbs::ReplSyncRequest>(b).unwrap();
            json!({"node_id": st(m.node_id()), "endpoint": st(m.endpoint()), "epoch": n64(m.epoch().into()),
                   "seq": n64(m.seq().into()), "full": m.full(), "node_epoch": n64(m.node_epoch().into()),
                   "stream_version": m.stream_version()})
        }
        "ReplSyncResponse" => {
            let m = d::<fbs::ReplSyncResponse>(b).unwrap();
            let h: Vec<Value> = m
                .history()
                .unwrap()
                .iter()
                .map(|e| json!({"epoch": n64(e.epoch().into()), "start_seq": n64(e.start_seq().into())}))
                .collect();
            json!({"full": m.full(), "epoch": n64(m.epoch().into()), "seq": n64(m.seq().into()),
                   "history": h, "node_id": st(m.node_id()), "stream_version": m.stream_version()})
        }
        "ReplSnapshot" => {
            let m = d::<fbs::ReplSnapshot>(b).unwrap();
            json!({"records": hx(m.records()), "last": m.last()})
        }
        "ReplBatches" => json!({"batches": hx(d::<fbs::ReplBatches>(b).unwrap().batches())}),
        "ReplHeartbeat" => {
            let m = d::<fbs::ReplHeartbeat>(b).unwrap();
            json!({"epoch": n64(m.epoch().into()), "seq": n64(m.seq().into()), "time_ms": n64(m.time_ms().into())})
        }
        "ReplAck" => json!({"seq": n64(d::<fbs::ReplAck>(b).unwrap().seq().into())}),
        "PromoteRequest" => json!({"min_epoch": n64(d::<fbs::PromoteRequest>(b).unwrap().min_epoch().into())}),
        "PromoteResponse" => {
            let m = d::<fbs::PromoteResponse>(b).unwrap();
            json!({"epoch": n64(m.epoch().into()), "seq": n64(m.seq().into())})
        }
        "ReplicaOfRequest" => {
            let m = d::<fbs::ReplicaOfRequest>(b).unwrap();
            json!({"primary": st(m.primary()), "epoch": n64(m.epoch().into())})
        }
        "ReplicaOfResponse" => json!({"epoch": n64(d::<fbs::ReplicaOfResponse>(b).unwrap().epoch().into())}),
        other => panic!("vector message {other} has no reader in this test: add one"),
    }
}

fn i64_of(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("integer field")
}

fn kind(v: &Value) -> fbs::ValueKind {
    fbs::ValueKind(v.as_u64().expect("kind") as u8)
}

/// The canonical encoders of the requests an SDK sends, for byte-for-byte comparison.
fn encode_request(message: &str, f: &Value) -> Option<Vec<u8>> {
    let h = |k: &str| unhex(f[k].as_str().unwrap_or(""));
    let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
    Some(match message {
        "HelloRequest" => {
            assert_eq!(f["protocol_version"], 1);
            body::hello_request(&s("token"), &s("client_name"), f["features"].as_u64().unwrap() as u32)
        }
        "PingRequest" => body::ping_request(&h("payload")),
        "InfoRequest" => body::info_request(&s("section")),
        "KeyRequest" => body::key_request(&h("key")),
        "SetRequest" => body::set_request(
            &h("key"),
            &h("value"),
            kind(&f["kind"]),
            i64_of(&f["ttl_ms"]),
            fbs::SetCondition(f["condition"].as_u64().unwrap() as u8),
        ),
        "IncrRequest" => body::incr_request(&h("key"), i64_of(&f["delta"])),
        "ExpireRequest" => body::expire_request(&h("key"), i64_of(&f["ttl_ms"])),
        "CasRequest" => body::cas_request(&Cas {
            key: &h("key"),
            expected: &h("expected"),
            expected_kind: kind(&f["expected_kind"]),
            expect_absent: f["expect_absent"].as_bool().unwrap(),
            value: &h("value"),
            kind: kind(&f["kind"]),
            ttl_ms: i64_of(&f["ttl_ms"]),
        }),
        "MGetRequest" => {
            let keys: Vec<Vec<u8>> = f["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| unhex(k["key"].as_str().unwrap()))
                .collect();
            body::mget_request(&keys)
        }
        "MSetRequest" => {
            let owned: Vec<(Vec<u8>, Vec<u8>, fbs::ValueKind, i64)> = f["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        unhex(e["key"].as_str().unwrap()),
                        unhex(e["value"].as_str().unwrap()),
                        kind(&e["kind"]),
                        i64_of(&e["ttl_ms"]),
                    )
                })
                .collect();
            let entries: Vec<EntryRef<'_>> = owned
                .iter()
                .map(|(k, v, kind, ttl)| EntryRef {
                    key: k,
                    value: v,
                    kind: *kind,
                    ttl_ms: *ttl,
                })
                .collect();
            body::mset_request(&entries)
        }
        "ScanRequest" => body::scan_request(&h("prefix"), &h("cursor"), f["count"].as_u64().unwrap() as u32),
        "ErrorResponse" => body::error_response(
            ErrorCode::from_u16(f["code"].as_u64().unwrap() as u16),
            &s("message"),
            &s("primary"),
            f["retry_after_ms"].as_u64().unwrap() as u32,
        ),
        _ => return None,
    })
}

#[test]
fn valid_frames_decode_and_reencode() {
    let v = vectors();
    assert_eq!(v["protocol_version"], 1);
    let valid = v["valid"].as_array().unwrap();
    assert!(valid.len() >= 40, "expected the full vector set");
    let mut encoded = 0;
    for case in valid {
        let name = case["name"].as_str().unwrap();
        let frame_bytes = unhex(case["frame_hex"].as_str().unwrap());
        let body_bytes = unhex(case["body_hex"].as_str().unwrap());
        let (f, used) = frame::decode(&frame_bytes, frame::DEFAULT_MAX_FRAME_BYTES)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(used, frame_bytes.len(), "{name}");
        assert_eq!(f.opcode, Opcode(case["opcode"].as_u64().unwrap() as u8), "{name}");
        assert_eq!(u64::from(f.flags), case["flags"].as_u64().unwrap(), "{name}");
        assert_eq!(f.body, &body_bytes[..], "{name}");
        // Every prefix is "need more bytes", never an error or a panic.
        for cut in 0..frame_bytes.len() {
            assert_eq!(
                frame::decode(&frame_bytes[..cut], frame::DEFAULT_MAX_FRAME_BYTES),
                Ok(None),
                "{name} cut at {cut}"
            );
        }
        let mut again = Vec::new();
        frame::encode(f.opcode, f.flags, f.body, &mut again);
        assert_eq!(hex(&again), hex(&frame_bytes), "{name}: frame re-encoding");
        let message = case["message"].as_str().unwrap();
        let got = fields(message, f.body);
        let want = &case["fields"];
        if message == "SnapshotBeginRequest" {
            assert_eq!(got, json!({}), "{name}");
        } else {
            assert_eq!(&got, want, "{name}: fields");
        }
        if let Some(mine) = encode_request(message, want) {
            assert_eq!(hex(&mine), hex(&body_bytes), "{name}: canonical body");
            encoded += 1;
        }
    }
    assert!(encoded >= 25, "only {encoded} bodies compared byte for byte");
}

#[test]
fn invalid_frames_are_refused_with_their_code() {
    let v = vectors();
    for case in v["invalid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let want = ErrorCode::from_name(case["error"].as_str().unwrap()).expect("known code");
        let bytes = unhex(case["frame_hex"].as_str().unwrap());
        let got = match frame::decode(&bytes, frame::DEFAULT_MAX_FRAME_BYTES) {
            Err(e) => e.code(),
            Ok(None) => panic!("{name}: decoder wants more bytes"),
            Ok(Some((f, _))) if !f.opcode.is_assigned_request() => ErrorCode::UnknownOpcode,
            Ok(Some((f, _))) => {
                assert_eq!(f.opcode, Opcode::GET, "{name}");
                let server = server::key_request(f.body).expect_err(name);
                assert_eq!(server.table, "KeyRequest", "{name}");
                let client = body::decode::<fbs::KeyRequest>(f.body).expect_err(name);
                assert_eq!(server.code(), client.code(), "{name}: both readers refuse it alike");
                client.code()
            }
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn empty_body_means_defaults() {
    let set = body::decode::<fbs::IncrRequest>(&[]).unwrap();
    assert_eq!(set.delta(), 1);
    assert!(set.key().is_none());
}

#[test]
fn error_codes_round_trip() {
    for n in 0..=30u16 {
        assert_eq!(ErrorCode::from_u16(n).as_u16(), n);
    }
    assert!(ErrorCode::BadCrc.is_fatal() && !ErrorCode::Redirect.is_fatal());
}

/// What the server's decoders read from a request body, in the vectors' terms.
fn server_fields(message: &str, b: &[u8]) -> Option<Value> {
    let hx = |v: &[u8]| Value::String(hex(v));
    Some(match message {
        "HelloRequest" => {
            let m = server::hello_request(b).unwrap();
            json!({"protocol_version": m.protocol_version, "token": m.token,
                   "client_name": m.client_name, "features": m.features})
        }
        "PingRequest" => json!({"payload": hx(server::ping_request(b).unwrap())}),
        "InfoRequest" => json!({"section": server::info_request(b).unwrap()}),
        "KeyRequest" => json!({"key": hx(server::key_request(b).unwrap())}),
        "SetRequest" => {
            let m = server::set_request(b).unwrap();
            json!({"key": hx(m.key), "value": hx(m.value), "kind": m.kind,
                   "ttl_ms": n64(m.ttl_ms.into()), "condition": m.condition})
        }
        "IncrRequest" => {
            let (key, delta) = server::incr_request(b).unwrap();
            json!({"key": hx(key), "delta": n64(delta.into())})
        }
        "ExpireRequest" => {
            let (key, ttl_ms) = server::expire_request(b).unwrap();
            json!({"key": hx(key), "ttl_ms": n64(ttl_ms.into())})
        }
        "CasRequest" => {
            let m = server::cas_request(b).unwrap();
            json!({"key": hx(m.key), "expected": hx(m.expected), "expected_kind": m.expected_kind,
                   "expect_absent": m.expect_absent, "value": hx(m.value), "kind": m.kind,
                   "ttl_ms": n64(m.ttl_ms.into())})
        }
        "MGetRequest" => {
            let keys: Vec<Value> = server::mget_request(b)
                .unwrap()
                .into_iter()
                .map(|k| json!({"key": hx(k)}))
                .collect();
            json!({"keys": keys})
        }
        "MSetRequest" => {
            // Entry.found means nothing in a request: read, checked and dropped.
            let e: Vec<Value> = server::mset_request(b)
                .unwrap()
                .into_iter()
                .map(|e| {
                    json!({"key": hx(e.key), "found": false, "kind": e.kind,
                           "value": hx(e.value), "ttl_ms": n64(e.ttl_ms.into())})
                })
                .collect();
            json!({"entries": e})
        }
        "ScanRequest" => {
            let m = server::scan_request(b).unwrap();
            json!({"prefix": hx(m.prefix), "cursor": hx(m.cursor), "count": m.count})
        }
        "SnapshotBeginRequest" => {
            server::snapshot_begin_request(b).unwrap();
            json!({})
        }
        "SnapshotReadRequest" => {
            let m = server::snapshot_read_request(b).unwrap();
            json!({"snapshot_id": m.snapshot_id, "offset": n64(m.offset.into()), "max_bytes": m.max_bytes})
        }
        _ => return None,
    })
}

/// The server's reply encoders, for byte-for-byte comparison.
fn encode_reply(message: &str, f: &Value) -> Option<Vec<u8>> {
    let h = |k: &str| unhex(f[k].as_str().unwrap_or(""));
    let s = |k: &str| f[k].as_str().unwrap_or("");
    let u = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{message}.{k}"));
    let b = |k: &str| f[k].as_bool().unwrap_or_else(|| panic!("{message}.{k}"));
    let mut out = Vec::new();
    match message {
        "HelloResponse" => {
            assert_eq!(f["protocol_version"], 1);
            server::hello_response(
                &server::HelloReply {
                    server_version: s("server_version"),
                    node_id: s("node_id"),
                    role: u("role") as u8,
                    max_frame_bytes: i64_of(&f["max_frame_bytes"]) as u64,
                    max_key_bytes: u("max_key_bytes") as u32,
                    max_value_bytes: u("max_value_bytes") as u32,
                    features: u("features") as u32,
                },
                &mut out,
            );
        }
        "PingResponse" => server::ping_response(&h("payload"), &mut out),
        "GetResponse" => {
            let value = h("value");
            if b("found") {
                server::get_found(u("kind") as u8, &value, &mut out);
            } else {
                assert!(value.is_empty() && u("kind") == 0);
                server::get_not_found(&mut out);
            }
            // The builder's encoding, which the hand-written one must equal.
            let mut reference = Vec::new();
            server::get_response_reference(b("found"), u("kind") as u8, &value, &mut reference);
            assert_eq!(hex(&reference), hex(&out), "GetResponse: hand-written vs builder");
        }
        "SetResponse" => server::set_response(b("applied"), &mut out),
        "BoolResponse" => server::bool_response(b("value"), &mut out),
        "IncrResponse" => server::incr_response(i64_of(&f["value"]), &mut out),
        "TtlResponse" => server::ttl_response(i64_of(&f["ttl_ms"]), &mut out),
        "CasResponse" => {
            let value = h("value");
            let current = b("found").then_some((u("kind") as u8, value.as_slice()));
            server::cas_response(b("applied"), current, &mut out);
        }
        "MGetResponse" => {
            type Owned = (Vec<u8>, Option<(u8, Vec<u8>)>);
            let entries: Vec<Owned> = f["entries"]
                .as_array()?
                .iter()
                .map(|e| {
                    let found = e["found"].as_bool().unwrap_or(false);
                    let kind = e["kind"].as_u64().unwrap_or(0) as u8;
                    let value = unhex(e["value"].as_str().unwrap_or(""));
                    (unhex(e["key"].as_str().unwrap_or("")), found.then_some((kind, value)))
                })
                .collect();
            let refs: Vec<server::MgetEntry<'_>> = entries
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_ref().map(|(kind, v)| (*kind, v.as_slice()))))
                .collect();
            server::mget_response(&refs, &mut out);
        }
        "ScanResponse" => {
            let keys: Vec<Vec<u8>> = f["keys"]
                .as_array()?
                .iter()
                .map(|k| unhex(k["key"].as_str().unwrap_or("")))
                .collect();
            server::scan_response(&keys, &h("next_cursor"), &mut out);
        }
        "InfoResponse" => server::info_response(s("json"), &mut out),
        "SnapshotBeginResponse" => {
            server::snapshot_begin_response(s("snapshot_id"), i64_of(&f["created_ms"]), &mut out);
        }
        "SnapshotReadResponse" => {
            server::snapshot_read_response(b("ready"), i64_of(&f["size"]) as u64, &h("data"), &mut out);
        }
        "ErrorResponse" => server::error_response(
            u("code") as u16,
            s("message"),
            s("primary"),
            u("retry_after_ms") as u32,
            &mut out,
        ),
        _ => return None,
    }
    Some(out)
}

#[test]
fn server_decoders_read_every_request_vector() {
    let mut checked = 0;
    for case in vectors()["valid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let body_bytes = unhex(case["body_hex"].as_str().unwrap());
        let Some(got) = server_fields(case["message"].as_str().unwrap(), &body_bytes) else {
            continue;
        };
        assert_eq!(&got, &case["fields"], "{name}: server decoder");
        checked += 1;
    }
    assert!(
        checked >= 25,
        "only {checked} request vectors read by the server decoders"
    );
}

#[test]
fn server_encoders_write_every_reply_vector() {
    let mut checked = 0;
    for case in vectors()["valid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let Some(mine) = encode_reply(case["message"].as_str().unwrap(), &case["fields"]) else {
            continue;
        };
        assert_eq!(
            hex(&mine),
            case["body_hex"].as_str().unwrap(),
            "{name}: canonical reply"
        );
        // And in a frame, written in place as the core writes it.
        let mut framed = Vec::new();
        let start = frame::begin(&mut framed);
        framed.extend_from_slice(&mine);
        let (op, flags) = (
            case["opcode"].as_u64().unwrap() as u8,
            case["flags"].as_u64().unwrap() as u8,
        );
        frame::end(&mut framed, start, Opcode(op), flags);
        assert_eq!(hex(&framed), case["frame_hex"].as_str().unwrap(), "{name}: frame");
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} reply vectors written by the server encoders"
    );
}
