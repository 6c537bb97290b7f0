//! Fail-over behaviour against a real primary and replica: REDIRECT is
//! followed to the primary, STALE_OK reads are served by the replica.

mod support;

use std::time::Duration;

use support::{Engine, TempDir};
use velocity_sdk::{Client, Value};

/// A primary and a replica sharing the primary's certificate, CA and tokens
/// (as pods of one VelocityCluster do).
fn pair(dir: &TempDir) -> (Engine, Engine) {
    let p = Engine::tls(&dir.path().join("p"));
    let pd = &p.data_dir;
    let path = |name: &str| pd.join(name).to_string_lossy().into_owned();
    let mut args = vec![
        "--tls-cert".to_owned(),
        path("tls/tls.crt"),
        "--tls-key".to_owned(),
        path("tls/tls.key"),
        "--replica-ca".to_owned(),
        path("tls/ca.crt"),
        "--auth-token-file".to_owned(),
        path("auth-token"),
        "--replica-of".to_owned(),
        p.endpoint(),
    ];
    for (flag, file) in [
        ("--admin-token-file", "admin-token"),
        ("--replication-token-file", "replication-token"),
    ] {
        if pd.join(file).exists() {
            args.extend([flag.to_owned(), path(file)]);
        }
    }
    let mut r = Engine::new(&dir.path().join("r"), false, &args);
    r.start();
    (p, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_from_a_replica_goes_to_the_primary() {
    let dir = TempDir::new("redirect");
    let (p, r) = pair(&dir);
    let to_replica = || {
        Client::builder()
            .endpoint(r.endpoint())
            .pool_size(2)
            .token(p.token())
            .ca_file(p.ca())
    };
    let c = to_replica().build().await.unwrap();
    assert_eq!(c.endpoint(), r.endpoint());
    // A write to the replica is redirected, executed once on the primary, and the pool stays there.
    assert_eq!(c.incr("hits", 1).await.unwrap(), 1);
    assert_eq!(c.endpoint(), p.endpoint());
    assert_eq!(c.incr("hits", 1).await.unwrap(), 2);
    assert!(c.set("k", "v").await.unwrap());
    let primary = p.client().await;
    assert_eq!(primary.get("hits").await.unwrap(), Some(Value::Int(2)));
    // A linearizable read through a fresh client to the replica is redirected too.
    let c2 = to_replica().build().await.unwrap();
    assert_eq!(c2.get("k").await.unwrap(), Some(Value::from("v")));
    assert_eq!(c2.endpoint(), p.endpoint());
    // STALE_OK reads are served by the replica itself once it has caught up (polled).
    let stale = to_replica().build().await.unwrap().stale_ok();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if stale.get("hits").await.unwrap() == Some(Value::Int(2)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica never caught up:\n{}",
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling a remote position
    }
    assert_eq!(stale.endpoint(), r.endpoint(), "stale reads must not be redirected");
}

/// A planned switchover (velocityctl switchover) under write load: the client
/// follows the new primary and every acknowledged write reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_load_keeps_every_acknowledged_write() {
    let dir = TempDir::new("switchover");
    let (p, r) = pair(&dir);
    let c = Client::builder()
        .endpoint(p.endpoint())
        .pool_size(4)
        .token(p.token())
        .ca_file(p.ca())
        .build()
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        let stop = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0);
            let mut i = 0u64;
            while !*stop.borrow() {
                let key = format!("sw:{w}:{i}");
                match c.set(key.as_str(), i as i64).await {
                    Ok(_) => acked.push((key, i as i64)),
                    Err(e) if e.may_have_happened() || e.not_sent() => failed += 1,
                    Err(e) => panic!("unexpected error during switchover: {e:?}"),
                }
                i += 1;
            }
            (acked, failed)
        }));
    }
    while c.get("sw:0:200").await.unwrap().is_none() {
        tokio::task::yield_now().await;
    }
    let ctl = support::engine_bin().with_file_name("velocityctl");
    let admin = p.data_dir.join("admin-token");
    let mut cmd = std::process::Command::new(&ctl);
    cmd.arg("--endpoint").arg(p.endpoint()).arg("--ca").arg(p.ca());
    cmd.arg("--token-file").arg(p.data_dir.join("auth-token"));
    if admin.exists() {
        cmd.arg("--admin-token-file").arg(&admin);
    }
    cmd.args(["switchover", &r.endpoint()]).env_remove("VDB_TOKEN");
    let out = tokio::task::block_in_place(|| cmd.output().unwrap());
    assert!(
        out.status.success(),
        "switchover: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Writes continue on the new primary.
    let target = c.get("sw:0:0").await.unwrap();
    assert_eq!(target, Some(Value::Int(0)));
    let before = c.endpoint();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while c.endpoint() != r.endpoint() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client never moved to the new primary (at {before})"
        );
        tokio::task::yield_now().await;
    }
    let mark = c.incr("sw:after", 1).await.unwrap();
    assert_eq!(mark, 1);
    stop_tx.send(true).unwrap();
    let mut total = 0;
    for w in workers {
        let (acked, _failed) = w.await.unwrap();
        let keys: Vec<&str> = acked.iter().map(|(k, _)| k.as_str()).collect();
        for (chunk, want) in keys.chunks(500).zip(acked.chunks(500)) {
            let got = c.mget(chunk.iter().copied()).await.unwrap();
            for (g, (k, v)) in got.iter().zip(want) {
                assert_eq!(g, &Some(Value::Int(*v)), "acknowledged write {k} lost");
            }
        }
        total += acked.len();
    }
    assert!(total > 200, "load too small: {total}");
}
