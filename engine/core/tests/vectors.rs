//! The core's reply encoders against the shared vectors (proto/vectors/frames.json):
//! every response the native data plane sends is the canonical body, byte for byte,
//! the same as the Python engine's.

use serde_json::Value;
use velocity_core::codec;

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/vectors/frames.json");
    let text = std::fs::read_to_string(path).expect("proto/vectors/frames.json");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    v["valid"].as_array().expect("valid cases").clone()
}

fn hex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().expect("decimal string"),
        other => other.as_i64().expect("integer"),
    }
}

fn encode(message: &str, f: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match message {
        "HelloResponse" => codec::hello_response(
            &codec::HelloReply {
                server_version: f["server_version"].as_str()?,
                node_id: f["node_id"].as_str()?,
                role: int(&f["role"]) as u8,
                max_frame_bytes: int(&f["max_frame_bytes"]) as u64,
                max_key_bytes: int(&f["max_key_bytes"]) as u32,
                max_value_bytes: int(&f["max_value_bytes"]) as u32,
                features: int(&f["features"]) as u32,
            },
            &mut out,
        ),
        "PingResponse" => codec::ping_response(&hex(&f["payload"]), &mut out),
        "GetResponse" => {
            let value = hex(&f["value"]);
            if f["found"].as_bool()? {
                codec::get_found(int(&f["kind"]) as u8, &value, &mut out);
            } else {
                codec::get_not_found(&mut out);
            }
        }
        "SetResponse" => codec::set_response(f["applied"].as_bool()?, &mut out),
        "BoolResponse" => codec::bool_response(f["value"].as_bool()?, &mut out),
        "IncrResponse" => codec::incr_response(int(&f["value"]), &mut out),
        "TtlResponse" => codec::ttl_response(int(&f["ttl_ms"]), &mut out),
        "CasResponse" => {
            let value = hex(&f["value"]);
            let cur = f["found"]
                .as_bool()?
                .then_some((int(&f["kind"]) as u8, value.as_slice()));
            codec::cas_response(f["applied"].as_bool()?, cur, &mut out);
        }
        "MGetResponse" => {
            type Owned = (Vec<u8>, Option<(u8, Vec<u8>)>);
            let entries: Vec<Owned> = f["entries"]
                .as_array()?
                .iter()
                .map(|e| {
                    let found = e["found"].as_bool().unwrap_or(false);
                    (hex(&e["key"]), found.then(|| (int(&e["kind"]) as u8, hex(&e["value"]))))
                })
                .collect();
            let refs: Vec<_> = entries
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_ref().map(|(kind, v)| (*kind, v.as_slice()))))
                .collect();
            codec::mget_response(&refs, &mut out);
        }
        "ScanResponse" => {
            let keys: Vec<Vec<u8>> = f["keys"].as_array()?.iter().map(|k| hex(&k["key"])).collect();
            codec::scan_response(&keys, &hex(&f["next_cursor"]), &mut out);
        }
        "InfoResponse" => codec::info_response(f["json"].as_str()?, &mut out),
        "ErrorResponse" => codec::error_response(
            int(&f["code"]) as u16,
            f["message"].as_str()?,
            f["primary"].as_str()?,
            int(&f["retry_after_ms"]) as u32,
            &mut out,
        ),
        _ => return None,
    }
    Some(out)
}

#[test]
fn every_reply_the_core_sends_is_the_canonical_body() {
    let mut checked = 0;
    for case in vectors() {
        let message = case["message"].as_str().unwrap_or_default();
        let Some(body) = encode(message, &case["fields"]) else {
            continue;
        };
        assert_eq!(body, hex(&case["body_hex"]), "{}", case["name"]);
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} reply vectors checked");
}
