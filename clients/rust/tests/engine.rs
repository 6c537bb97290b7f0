//! The SDK against real engine processes: TLS + token, every operation, value
//! types, pipelining, wrong token, wrong CA, plaintext, a server killed
//! mid-request, and REDIRECT from a replica.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Engine, TempDir};
use velocity_sdk::{Client, Error, ErrorCode, SetOptions, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_token_every_operation() {
    let dir = TempDir::new("ops");
    let eng = Engine::tls(dir.path());
    let c = eng.client().await;

    // Values keep their type.
    assert!(c.set("s", "text").await.unwrap());
    c.set("b", vec![0u8, 255, 1]).await.unwrap();
    c.set("i", -42i64).await.unwrap();
    c.set("j", json!({"active": true, "n": [1, 2.5, null], "é": "ü"}))
        .await
        .unwrap();
    c.set("owned", String::from("owned")).await.unwrap();
    c.set("slice", &b"raw"[..]).await.unwrap();
    assert_eq!(c.get("s").await.unwrap(), Some(Value::String("text".into())));
    assert_eq!(c.get("b").await.unwrap(), Some(Value::Bytes(vec![0, 255, 1])));
    assert_eq!(c.get("i").await.unwrap(), Some(Value::Int(-42)));
    assert_eq!(
        c.get("j").await.unwrap(),
        Some(Value::Json(json!({"active": true, "n": [1, 2.5, null], "é": "ü"})))
    );
    assert_eq!(c.get("slice").await.unwrap().unwrap().as_bytes(), Some(&b"raw"[..]));
    assert_eq!(c.get("missing").await.unwrap(), None);

    // Conditions and TTLs.
    assert!(!c.set_with("s", "x", SetOptions::new().nx()).await.unwrap());
    assert!(c
        .set_with("new", "x", SetOptions::new().nx().ttl("1h30m"))
        .await
        .unwrap());
    assert!(!c.set_with("absent", "x", SetOptions::new().xx()).await.unwrap());
    assert!(c
        .set_with("s", "y", SetOptions::new().xx().ttl(Duration::from_secs(60)))
        .await
        .unwrap());
    let pttl = c.pttl("new").await.unwrap();
    assert!(pttl > 5_000_000 && pttl <= 5_400_000, "{pttl}");
    assert!(c.ttl("s").await.unwrap().unwrap() <= Duration::from_secs(60));
    assert_eq!(c.pttl("b").await.unwrap(), -1);
    assert_eq!(c.pttl("nope").await.unwrap(), -2);
    assert_eq!(c.ttl("b").await.unwrap(), None);
    assert!(c.persist("s").await.unwrap());
    assert_eq!(c.pttl("s").await.unwrap(), -1);
    assert!(c.expire("s", "1500ms").await.unwrap());
    assert!(!c.expire("nope", "2h").await.unwrap());
    assert!(matches!(
        c.set_with("k", "v", SetOptions::new().ttl("soon")).await,
        Err(Error::InvalidArgument(_))
    ));
    c.set_with("short", 1, SetOptions::new().ttl("1ms")).await.unwrap();

    // Counters.
    assert_eq!(c.incr("n", 1).await.unwrap(), 1);
    assert_eq!(c.incr("n", 10).await.unwrap(), 11);
    assert_eq!(c.decr("n", 2).await.unwrap(), 9);
    assert_eq!(c.get("n").await.unwrap(), Some(Value::Int(9)));
    c.set("big", i64::MAX).await.unwrap();
    let err = c.incr("big", 1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Overflow), "{err}");
    assert_eq!(c.incr("j", 1).await.unwrap_err().code(), Some(ErrorCode::WrongType));
    assert_eq!(c.incr("s", 1).await.unwrap_err().code(), Some(ErrorCode::NotInteger));

    // Delete / exists.
    assert!(c.exists("b").await.unwrap());
    assert!(c.delete("b").await.unwrap());
    assert!(!c.delete("b").await.unwrap());
    assert!(!c.exists("b").await.unwrap());

    // CAS.
    assert!(c.cas("cfg", None, "v1").await.unwrap());
    assert!(!c.cas("cfg", None, "v1").await.unwrap());
    assert!(!c.cas("cfg", Some("other".into()), "v2").await.unwrap());
    assert!(
        !c.cas("cfg", Some(Value::Bytes(b"v1".to_vec())), "v2").await.unwrap(),
        "kind must match too"
    );
    assert!(c.cas("cfg", Some("v1".into()), "v2").await.unwrap());
    assert!(c
        .cas(
            "j",
            Some(json!({"active": true, "n": [1, 2.5, null], "é": "ü"}).into()),
            5
        )
        .await
        .unwrap());
    assert_eq!(c.get("cfg").await.unwrap(), Some(Value::from("v2")));

    // MSET / MGET.
    c.mset([
        ("m1", Value::from(1)),
        ("m2", Value::from("two")),
        ("m3", Value::from(json!([3]))),
    ])
    .await
    .unwrap();
    assert_eq!(
        c.mget(["m1", "nope", "m2", "m3"]).await.unwrap(),
        vec![
            Some(Value::Int(1)),
            None,
            Some(Value::from("two")),
            Some(Value::Json(json!([3])))
        ]
    );
    c.mset_with_ttl([("t1", "a"), ("t2", "b")], "30s").await.unwrap();
    assert!(c.pttl("t2").await.unwrap() > 0);
    // Atomic: one bad entry (empty key) writes nothing.
    let err = c.mset([("ok-key", "x"), ("", "y")]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidArgument), "{err}");
    assert!(!c.exists("ok-key").await.unwrap());

    // SCAN: more keys than one page, in byte order, prefix respected.
    let mut want: Vec<Vec<u8>> = (0..250).map(|i| format!("scan:{i:04}").into_bytes()).collect();
    c.mset(want.iter().map(|k| (k.clone(), 0))).await.unwrap();
    c.set("scan", "not me").await.unwrap();
    c.set("scao", "not me").await.unwrap();
    want.sort();
    assert_eq!(c.scan("scan:").collect_keys().await.unwrap(), want);
    assert_eq!(c.scan_with_count("scan:", 7).collect_keys().await.unwrap(), want);
    assert!(c.scan("zzz").collect_keys().await.unwrap().is_empty());

    // INFO, PING.
    let info = c.info(None).await.unwrap();
    assert!(info.is_object(), "{info}");
    assert!(c.info(Some("replication")).await.unwrap().get("replication").is_some());
    assert_eq!(c.ping(b"hi").await.unwrap(), b"hi");
    assert!(c.ping("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_many_in_flight_matched_in_order() {
    let dir = TempDir::new("pipe");
    let eng = Engine::tls(dir.path());
    let c = eng.builder().pool_size(2).build().await.unwrap();
    let n = 3000;
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("p:{i}");
            c.set(key.as_str(), i).await.unwrap();
            (i, c.get(key.as_str()).await.unwrap())
        }));
    }
    for t in tasks {
        let (i, v) = t.await.unwrap();
        assert_eq!(v, Some(Value::Int(i64::from(i))));
    }
    assert_eq!(c.incr("p:0", 0).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_auth_failed() {
    let dir = TempDir::new("token");
    let eng = Engine::tls(dir.path());
    let err = eng.builder().token("not-the-token").build().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AuthFailed), "{err}");
    let err = eng.builder().token("").build().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AuthFailed), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_and_plaintext_against_tls_fail_the_handshake() {
    let dir = TempDir::new("ca");
    let eng = Engine::tls(dir.path());
    let other = TempDir::new("other-ca");
    let status = std::process::Command::new(support::python_bin())
        .args(["-c", "import sys, pathlib; from velocity_engine.tls import ensure_generated; ensure_generated(pathlib.Path(sys.argv[1]), ['127.0.0.1'])"])
        .arg(other.path())
        .status()
        .unwrap();
    assert!(status.success());
    let err = eng
        .builder()
        .ca_file(other.path().join("ca.crt"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    // VDB_CA is only read when no CA is given: the engine's own CA as PEM text still works.
    let pem = std::fs::read(eng.ca()).unwrap();
    let c = eng.builder().ca_pem(pem).build().await.unwrap();
    c.ping("").await.unwrap();
    // A plaintext client talking to the TLS port gets no V-Proto reply.
    let err = eng
        .builder()
        .insecure()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_insecure_server() {
    let dir = TempDir::new("plain");
    let eng = Engine::plaintext(dir.path());
    let c = eng.client().await;
    c.set("k", "v").await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(Value::from("v")));
    // A TLS client against a plaintext port fails the handshake.
    let err = Client::builder()
        .endpoint(eng.endpoint())
        .ca_file(dir.path().join("nope.crt"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let other = TempDir::new("plain-ca");
    let tls_eng = Engine::tls(other.path());
    let err = Client::builder()
        .endpoint(eng.endpoint())
        .ca_file(tls_eng.ca())
        .token("x")
        .connect_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_request() {
    let dir = TempDir::new("kill");
    let mut eng = Engine::tls(dir.path());
    let c = eng
        .builder()
        .pool_size(4)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        let stop = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            let (mut acked, mut unknown, mut not_sent) = (0i64, 0i64, 0i64);
            while !*stop.borrow() {
                match c.incr("counter", 1).await {
                    Ok(_) => acked += 1,
                    Err(e) if e.may_have_happened() => unknown += 1,
                    Err(e) if e.not_sent() => {
                        not_sent += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("unexpected error kind for a write: {e:?}"),
                }
            }
            (acked, unknown, not_sent)
        }));
    }
    // Kill once the load is well under way (polled, not slept).
    while c.get("counter").await.unwrap().and_then(|v| v.as_i64()).unwrap_or(0) < 500 {
        tokio::task::yield_now().await;
    }
    eng.kill();
    // Reads while the server is down fail cleanly (no panic, no hang).
    let err = c.get("counter").await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::ConnectionLost { .. }),
        "{err:?}"
    );
    tokio::task::block_in_place(|| eng.start());
    // The pool reconnects (with backoff) and keeps working.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match c.incr("after", 1).await {
            Ok(_) => break,
            Err(e) if e.not_sent() && tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("no recovery: {e:?}"),
        }
    }
    stop_tx.send(true).unwrap();
    let (mut acked, mut unknown, mut not_sent) = (0, 0, 0);
    for w in workers {
        let (a, u, n) = w.await.unwrap();
        acked += a;
        unknown += u;
        not_sent += n;
    }
    let counter = c.get("counter").await.unwrap().and_then(|v| v.as_i64()).unwrap();
    // Every acknowledged increment is there; those of unknown outcome may or may not be.
    assert!(
        counter >= acked && counter <= acked + unknown,
        "counter {counter}, acked {acked}, unknown {unknown}, not sent {not_sent}"
    );
}

/// Values written by the Rust SDK read back with the same type by the Python
/// SDK and velocityctl, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_language_values() {
    let dir = TempDir::new("xlang");
    let eng = Engine::tls(dir.path());
    let c = eng.client().await;
    c.set("rs:bytes", vec![0u8, 0xff, 0x10]).await.unwrap();
    c.set("rs:str", "héllo ✓").await.unwrap();
    c.set("rs:int", i64::MIN).await.unwrap();
    c.set("rs:json", json!({"a": [1, 2.5, null, true], "é": "ü", "z": {}}))
        .await
        .unwrap();
    c.set("rs:bool", true).await.unwrap();
    let script = r#"
import asyncio, json, sys
from velocity import VelocityPool

async def main():
    ep, token, ca = sys.argv[1:4]
    async with VelocityPool(node=ep, auth=token, ca=ca, pool_size=1) as v:
        out = {}
        for k in ["rs:bytes", "rs:str", "rs:int", "rs:json", "rs:bool"]:
            val = await v.get(k)
            out[k] = [type(val).__name__, val.hex() if isinstance(val, bytes) else val]
        await v.set("py:bytes", b"\x00\xfe")
        await v.set("py:str", "J\u00f6rg \u2603")
        await v.set("py:int", 2**63 - 1)
        await v.set("py:json", {"user": {"id": 7}, "tags": ["a", None], "f": 1.5})
        await v.set("py:bool", False)
        await v.set("py:none", None)
        print(json.dumps(out))

asyncio.run(main())
"#;
    let out = tokio::process::Command::new(support::python_bin())
        .args(["-c", script, &eng.endpoint(), &eng.token()])
        .arg(eng.ca())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!({
            "rs:bytes": ["bytes", "00ff10"],
            "rs:str": ["str", "héllo ✓"],
            "rs:int": ["int", i64::MIN],
            "rs:json": ["dict", {"a": [1, 2.5, null, true], "é": "ü", "z": {}}],
            "rs:bool": ["bool", true],
        })
    );
    assert_eq!(c.get("py:bytes").await.unwrap(), Some(Value::Bytes(vec![0, 0xfe])));
    assert_eq!(c.get("py:str").await.unwrap(), Some(Value::from("Jörg ☃")));
    assert_eq!(c.get("py:int").await.unwrap(), Some(Value::Int(i64::MAX)));
    assert_eq!(
        c.get("py:json").await.unwrap(),
        Some(Value::Json(json!({"user": {"id": 7}, "tags": ["a", null], "f": 1.5})))
    );
    assert_eq!(c.get("py:bool").await.unwrap(), Some(Value::Json(json!(false))));
    assert_eq!(c.get("py:none").await.unwrap(), Some(Value::Json(json!(null))));
    // CAS across SDKs compares bytes: Rust's JSON encoding matches Python's exactly.
    assert!(c
        .cas(
            "py:json",
            Some(json!({"user": {"id": 7}, "tags": ["a", null], "f": 1.5}).into()),
            1
        )
        .await
        .unwrap());

    // velocityctl reads what Rust wrote, with the type, and writes what Rust reads.
    let ctl = support::engine_bin().with_file_name("velocityctl");
    let token_file = eng.data_dir.join("auth-token");
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&ctl);
        cmd.arg("--endpoint")
            .arg(eng.endpoint())
            .arg("--ca")
            .arg(eng.ca())
            .arg("--token-file")
            .arg(&token_file);
        cmd.args(args).env_remove("VDB_TOKEN");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "velocityctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let got = tokio::task::block_in_place(|| run(&["get", "--json", "rs:int"]));
    assert_eq!((&got["type"], &got["value"]), (&json!("int"), &json!(i64::MIN)));
    let got = tokio::task::block_in_place(|| run(&["get", "--json", "rs:json"]));
    assert_eq!(
        (&got["type"], &got["value"]),
        (&json!("json"), &json!({"a": [1, 2.5, null, true], "é": "ü", "z": {}}))
    );
    let got = tokio::task::block_in_place(|| run(&["get", "--json", "rs:bytes"]));
    assert_eq!(
        (&got["type"], &got["value"]),
        (&json!("bytes"), &json!({"base64": "AP8Q"}))
    );
    tokio::task::block_in_place(|| run(&["set", "--type", "int", "--", "ctl:int", "-12"]));
    tokio::task::block_in_place(|| run(&["set", "--type", "json", "ctl:json", r#"{"k":[1]}"#]));
    assert_eq!(c.get("ctl:int").await.unwrap(), Some(Value::Int(-12)));
    assert_eq!(c.get("ctl:json").await.unwrap(), Some(Value::Json(json!({"k": [1]}))));
}
