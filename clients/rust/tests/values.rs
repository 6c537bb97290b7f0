//! proto/vectors/values.json: every SDK stores each value with the same kind
//! and the same bytes, and reads the bytes back to the same value.

use velocity_sdk::Value;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn value_of(case: &serde_json::Value) -> Value {
    let v = &case["value"];
    match case["type"].as_str().expect("type") {
        "bytes" => Value::Bytes(unhex(v.as_str().expect("hex bytes"))),
        "str" => Value::String(v.as_str().expect("text").to_owned()),
        "int" => Value::Int(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .expect("int"),
        ),
        "json" => Value::Json(v.clone()),
        other => panic!("unknown value type {other} in values.json: teach this test"),
    }
}

#[test]
fn values_encode_and_decode_like_every_sdk() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/vectors/values.json");
    let text = std::fs::read_to_string(path).expect("proto/vectors/values.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10, "expected the full value vector set");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let value = value_of(case);
        let kind = case["kind"].as_u64().unwrap() as u8;
        let payload = unhex(case["payload_hex"].as_str().unwrap());
        assert_eq!(value.kind().0, kind, "{name}: kind");
        assert_eq!(
            &*value.to_wire(),
            &payload[..],
            "{name}: bytes (as text: {:?})",
            String::from_utf8_lossy(&value.to_wire())
        );
        assert_eq!(Value::from_wire(kind, payload).unwrap(), value, "{name}: read back");
    }
}

#[test]
fn unknown_kinds_read_as_bytes_and_bad_payloads_are_errors() {
    assert_eq!(Value::from_wire(200, vec![1, 2]).unwrap(), Value::Bytes(vec![1, 2]));
    assert!(Value::from_wire(1, vec![0xff]).is_err());
    assert!(Value::from_wire(2, vec![0; 7]).is_err());
    assert!(Value::from_wire(3, b"{".to_vec()).is_err());
}
