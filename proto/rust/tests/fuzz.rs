//! Property tests: mutated vector frames and random bytes never panic the
//! frame decoder, the body verifier (client direction) or the server's
//! decoders, and what decodes re-encodes identically.

use proptest::prelude::*;
use velocity_proto::{body, fbs, frame, server};

fn vector_frames() -> Vec<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/frames.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["invalid"].as_array().unwrap())
        .map(|c| {
            let s = c["frame_hex"].as_str().unwrap();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

/// Reads every table type from a body; each must return, not panic.
fn read_all(b: &[u8]) {
    macro_rules! touch {
        ($($t:ty),*) => {$( let _ = body::decode::<$t>(b).map(|m| format!("{m:?}")); )*};
    }
    touch!(
        fbs::HelloRequest,
        fbs::HelloResponse,
        fbs::PingRequest,
        fbs::PingResponse,
        fbs::KeyRequest,
        fbs::BoolResponse,
        fbs::ErrorResponse,
        fbs::GetResponse,
        fbs::SetRequest,
        fbs::SetResponse,
        fbs::IncrRequest,
        fbs::IncrResponse,
        fbs::ExpireRequest,
        fbs::TtlResponse,
        fbs::CasRequest,
        fbs::CasResponse,
        fbs::MGetRequest,
        fbs::MGetResponse,
        fbs::MSetRequest,
        fbs::ScanRequest,
        fbs::ScanResponse,
        fbs::InfoRequest,
        fbs::InfoResponse,
        fbs::ReplSyncResponse
    );
    let _ = server::hello_request(b);
    let _ = server::ping_request(b);
    let _ = server::info_request(b);
    let _ = server::key_request(b);
    let _ = server::set_request(b);
    let _ = server::incr_request(b);
    let _ = server::expire_request(b);
    let _ = server::cas_request(b);
    let _ = server::mget_request(b);
    let _ = server::mset_request(b);
    let _ = server::scan_request(b);
    let _ = server::snapshot_begin_request(b);
    let _ = server::snapshot_read_request(b);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_frames_never_panic(which in any::<usize>(), muts in prop::collection::vec(mutation(), 1..4), fix_crc in any::<bool>()) {
        let frames = vector_frames();
        let mut f = frames[which % frames.len()].clone();
        for m in muts {
            match m {
                Mutation::Flip(i, x) if !f.is_empty() => { let n = f.len(); f[i % n] ^= x; }
                Mutation::Truncate(i) => f.truncate(i % (f.len() + 1)),
                Mutation::Insert(i, x) => { let n = f.len(); f.insert(i % (n + 1), x); }
                Mutation::Flip(..) => {}
            }
        }
        if fix_crc && f.len() >= frame::HEADER_LEN + frame::TRAILER_LEN {
            // Let body mutations through the CRC so the verifier sees them.
            let n = f.len() - frame::TRAILER_LEN;
            let body_len = (n - frame::HEADER_LEN) as u64;
            f[6..14].copy_from_slice(&body_len.to_le_bytes());
            let crc = frame::crc32(&f[..n]);
            f[n..].copy_from_slice(&crc.to_le_bytes());
        }
        if let Ok(Some((fr, used))) = frame::decode(&f, frame::DEFAULT_MAX_FRAME_BYTES) {
            prop_assert!(used <= f.len());
            read_all(fr.body);
            let mut again = Vec::new();
            frame::encode(fr.opcode, fr.flags, fr.body, &mut again);
            prop_assert_eq!(&again[..], &f[..used]);
        }
    }

    #[test]
    fn random_bodies_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        read_all(&b);
    }
}
