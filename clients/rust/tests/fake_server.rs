//! The client against a scripted in-process server on loopback: retry rules
//! (a read is resent once, a write is never resent and reports an unknown
//! outcome), request timeouts, seeds, protocol violations, and fuzzed replies
//! that must never panic or hang the client.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use velocity_proto::{body, frame, ErrorCode, Opcode};
use velocity_sdk::{Client, Error, Value};

fn vector(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/vectors/frames.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = v["valid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .expect(name);
    let s = case["frame_hex"].as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Reads one request frame; `None` when the client closed.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Opcode> {
    loop {
        if let Ok(Some((f, used))) = frame::decode(buf, frame::DEFAULT_MAX_FRAME_BYTES) {
            let op = f.opcode;
            buf.drain(..used);
            return Some(op);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What the server does after HELLO on the n-th connection.
#[derive(Clone)]
enum Script {
    /// Read one request, then close without answering.
    DropAfterRequest,
    /// Answer every request with these bytes.
    Reply(Vec<u8>),
    /// Read requests, never answer (until the client closes).
    Silent,
}

async fn serve(scripts: Vec<Script>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("vdb://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        for script in scripts {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            conns.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf).await != Some(Opcode::HELLO) {
                    return;
                }
                s.write_all(&vector("hello-response")).await.unwrap();
                match script {
                    Script::DropAfterRequest => {
                        read_request(&mut s, &mut buf).await;
                    }
                    Script::Silent => while read_request(&mut s, &mut buf).await.is_some() {},
                    Script::Reply(bytes) => {
                        while read_request(&mut s, &mut buf).await.is_some() {
                            if s.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        for c in conns {
            let _ = c.await;
        }
    });
    (endpoint, task)
}

async fn client(endpoint: &str) -> Client {
    client_with_timeout(endpoint, Duration::from_secs(2)).await
}

async fn client_with_timeout(endpoint: &str, timeout: Duration) -> Client {
    Client::builder()
        .endpoint(endpoint)
        .insecure()
        .pool_size(1)
        .connect_timeout(timeout)
        .request_timeout(timeout)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_read_is_retried_once_on_a_fresh_connection() {
    let (ep, _server) = serve(vec![
        Script::DropAfterRequest,
        Script::Reply(vector("get-response-json")),
    ])
    .await;
    let c = client(&ep).await;
    let v = c.get("k").await.unwrap();
    assert!(matches!(v, Some(Value::Json(_))), "{v:?}");
}

#[tokio::test]
async fn a_write_whose_connection_broke_may_have_happened() {
    let (ep, _server) = serve(vec![Script::DropAfterRequest, Script::Reply(vector("incr-response"))]).await;
    let c = client(&ep).await;
    let err = c.incr("k", 1).await.unwrap_err();
    assert!(err.may_have_happened(), "{err:?}");
    assert!(matches!(err, Error::OutcomeUnknown { op: "INCR", .. }));
    // The pool replaces the connection; the next write goes through.
    assert_eq!(c.incr("k", 1).await.unwrap(), 1);
}

#[tokio::test]
async fn a_read_that_fails_twice_is_connection_lost() {
    let (ep, _server) = serve(vec![Script::DropAfterRequest, Script::DropAfterRequest]).await;
    let c = client(&ep).await;
    let err = c.get("k").await.unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { op: "GET", .. }), "{err:?}");
}

#[tokio::test]
async fn a_request_without_reply_times_out_and_its_connection_is_replaced() {
    let (ep, _server) = serve(vec![
        Script::Silent,
        Script::Silent,
        Script::Reply(vector("get-response-json")),
    ])
    .await;
    let c = client_with_timeout(&ep, Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    // A timed-out read is not resent (the server may be slow, not gone).
    let err = c.get("k").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { op: "GET" }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A timed-out write may have happened.
    let err = c.incr("k", 1).await.unwrap_err();
    assert!(err.may_have_happened(), "{err:?}");
    assert!(matches!(err, Error::OutcomeUnknown { op: "INCR", .. }), "{err:?}");
    // Each timeout closed its connection; the third one answers.
    assert!(matches!(c.get("k").await.unwrap(), Some(Value::Json(_))));
}

#[tokio::test]
async fn a_request_timeout_too_large_to_add_means_none() {
    let (ep, _server) = serve(vec![Script::Reply(vector("incr-response"))]).await;
    let c = Client::builder()
        .endpoint(ep)
        .insecure()
        .pool_size(1)
        .request_timeout(Duration::MAX)
        .build()
        .await
        .unwrap();
    assert_eq!(c.incr("k", 1).await.unwrap(), 1);
}

#[tokio::test]
async fn unreachable_seeds_are_skipped() {
    let (ep, _server) = serve(vec![Script::Reply(vector("incr-response"))]).await;
    let dead = format!("vdb://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let c = Client::builder()
        .endpoints([dead.as_str(), ep.as_str()])
        .insecure()
        .pool_size(1)
        .build()
        .await
        .unwrap();
    assert_eq!(c.endpoint(), ep);
    assert_eq!(c.incr("k", 1).await.unwrap(), 1);
    // Every seed unreachable: the connect error of the last one, nothing sent.
    let err = Client::builder()
        .endpoints([dead.as_str(), dead.as_str()])
        .insecure()
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }) && err.not_sent(), "{err:?}");
}

#[tokio::test]
async fn a_reply_for_another_opcode_is_a_protocol_error() {
    let (ep, _server) = serve(vec![Script::Reply(vector("ping-response"))]).await;
    let c = client(&ep).await;
    assert!(matches!(c.get("k").await.unwrap_err(), Error::Protocol(_)));
}

#[tokio::test]
async fn error_replies_carry_their_code() {
    let mut f = Vec::new();
    frame::encode(
        Opcode::ERROR,
        0,
        &body::error_response(ErrorCode::WritesRefused, "disk full", "", 0),
        &mut f,
    );
    let (ep, _server) = serve(vec![Script::Reply(f)]).await;
    let c = client(&ep).await;
    let err = c.set("k", "v").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WritesRefused));
    assert_eq!(err.to_string(), "WRITES_REFUSED: disk full");
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

const REPLIES: [&str; 6] = [
    "get-response-json",
    "get-response-bytes",
    "mget-response",
    "scan-response",
    "error-redirect",
    "incr-response",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Mutated reply frames (with the CRC fixed up half the time, so bodies reach
    /// the FlatBuffers verifier) give a value or an error: never a panic or a hang.
    #[test]
    fn fuzzed_replies_never_panic(which in 0..REPLIES.len(), muts in prop::collection::vec(mutation(), 1..4), fix_crc in any::<bool>()) {
        let mut f = vector(REPLIES[which]);
        for m in muts {
            match m {
                Mutation::Flip(i, x) => { let n = f.len(); f[i % n] ^= x; }
                Mutation::Truncate(i) => f.truncate(i % (f.len() + 1)),
                Mutation::Insert(i, x) => { let n = f.len(); f.insert(i % (n + 1), x); }
            }
            if f.is_empty() { f.push(0); }
        }
        if fix_crc && f.len() >= frame::HEADER_LEN + frame::TRAILER_LEN {
            let n = f.len() - frame::TRAILER_LEN;
            f[6..14].copy_from_slice(&((n - frame::HEADER_LEN) as u64).to_le_bytes());
            let crc = frame::crc32(&f[..n]);
            f[n..].copy_from_slice(&crc.to_le_bytes());
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            // Two scripted connections: a read may be retried once.
            let (ep, server) = serve(vec![Script::Reply(f.clone()), Script::Reply(f)]).await;
            let c = client_with_timeout(&ep, Duration::from_millis(300)).await;
            // Every step is bounded by the 300 ms timeouts; 30 s means a real hang.
            let outcome = tokio::time::timeout(Duration::from_secs(30), async {
                let _ = c.get("k").await;
                let _ = c.mget(["a", "b"]).await;
                let _ = c.scan("user:").collect_keys().await;
                let _ = c.incr("k", 1).await;
            })
            .await;
            assert!(outcome.is_ok(), "client hung on a fuzzed reply");
            drop(c);
            server.abort();
        });
    }
}
