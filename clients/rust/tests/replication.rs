//! Fail-over behaviour against real primaries and replicas: REDIRECT is
//! followed to the primary, STALE_OK reads are served by the replica, a
//! planned switchover and a primary killed under load (then promoted) lose no
//! acknowledged write.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Engine, TempDir};
use velocity_sdk::{Client, Error, Value};

/// A primary and a replica sharing the primary's certificate, CA and tokens
/// (as pods of one VelocityCluster do).
fn pair(dir: &TempDir) -> (Engine, Engine) {
    let p = Engine::tls(&dir.path().join("p"));
    let r = replica(&p, &dir.path().join("r"), &[]);
    (p, r)
}

/// A node started with `p`'s certificate, CA and tokens, following `p`.
fn replica(p: &Engine, dir: &std::path::Path, extra: &[&str]) -> Engine {
    let mut r = node_like(p, dir, extra);
    r.args.extend(["--replica-of".to_owned(), p.endpoint()]);
    r.start();
    r
}

/// A node (not started) with `p`'s certificate, CA and tokens.
fn node_like(p: &Engine, dir: &std::path::Path, extra: &[&str]) -> Engine {
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
    ];
    for (flag, file) in [
        ("--admin-token-file", "admin-token"),
        ("--replication-token-file", "replication-token"),
    ] {
        if pd.join(file).exists() {
            args.extend([flag.to_owned(), path(file)]);
        }
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Engine::new(dir, false, &args)
}

/// `velocityctl ARGS` against `node` with the cluster's token and admin token (from `p`).
fn ctl(p: &Engine, node: &Engine, args: &[&str]) -> String {
    let admin = p.data_dir.join("admin-token");
    let mut cmd = std::process::Command::new(support::engine_bin().with_file_name("velocityctl"));
    cmd.arg("--endpoint").arg(node.endpoint()).arg("--ca").arg(p.ca());
    cmd.arg("--token-file").arg(p.data_dir.join("auth-token"));
    if admin.exists() {
        cmd.arg("--admin-token-file").arg(&admin);
    }
    let out = cmd.args(args).env_remove("VDB_TOKEN").output().unwrap();
    assert!(
        out.status.success(),
        "velocityctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// What the writers of [`primary_killed_under_load_then_promoted`] saw.
#[derive(Default)]
struct History {
    /// key -> value of every SET that was acknowledged.
    acked: HashMap<String, i64>,
    /// SETs whose outcome is unknown (`may_have_happened`).
    unknown: Vec<String>,
    incr_acked: i64,
    incr_unknown: i64,
    /// Of the unknown ones, those the server answered `NOT_ENOUGH_REPLICAS`/`TIMEOUT`
    /// (the others got no reply).
    held: u64,
    /// Requests refused without being executed (`not_sent`: no primary reachable yet).
    refused: u64,
}

/// One write's outcome, sorted the way the error type tells.
enum Outcome {
    Acked,
    Unknown { held: bool },
    Refused,
}

fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Acked,
        Err(e) if e.may_have_happened() => Outcome::Unknown {
            held: e.code().is_some(),
        },
        Err(e) if e.not_sent() => Outcome::Refused,
        Err(e) => panic!("a write failed in a way the error type does not explain: {e:?}"),
    }
}

/// A primary killed (SIGKILL) under write load in a sync-replicated cluster of
/// three real engines: the writes in flight are reported as possibly applied
/// (`may_have_happened`), never resent; the most up-to-date replica is promoted
/// (`velocityctl promote`) and the other follows it; the client, given every
/// node as a seed, finds the new primary and keeps writing; every acknowledged
/// write is there afterwards, and the shared counter lies between the
/// acknowledged and the acknowledged plus unknown increments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_under_load_then_promoted() {
    let dir = TempDir::new("kill-primary");
    let sync = ["--replication-mode", "sync", "--sync-replicas", "1"];
    let mut p = Engine::new(&dir.path().join("p"), false, &sync.map(str::to_owned));
    p.start();
    let r1 = replica(&p, &dir.path().join("r1"), &sync);
    let r2 = replica(&p, &dir.path().join("r2"), &sync);
    let (token, ca) = (p.token(), p.ca());
    let admin = |node: &Engine| {
        Client::builder()
            .endpoint(node.endpoint())
            .pool_size(1)
            .token(token.clone())
            .ca_file(ca.clone())
            .build()
    };
    let info = |c: Client| async move { c.stale_ok().info(Some("replication")).await.unwrap()["replication"].clone() };
    let primary_info = admin(&p).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while info(primary_info.clone()).await["replicas_connected"] != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas never connected:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling a remote state
    }

    let c = Client::builder()
        .endpoints([p.endpoint(), r1.endpoint(), r2.endpoint()])
        .pool_size(4)
        .token(p.token())
        .ca_file(p.ca())
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let acked_total = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for w in 0..8 {
        let (c, stop, acked_total) = (c.clone(), stop_rx.clone(), acked_total.clone());
        workers.push(tokio::spawn(async move {
            let mut h = History::default();
            let mut i = 0i64;
            while !*stop.borrow() {
                let key = format!("kill:{w}:{i}");
                i += 1;
                let set = c.set(key.as_str(), i).await;
                match outcome(&set) {
                    Outcome::Acked => {
                        h.acked.insert(key, i);
                        acked_total.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Unknown { held } => {
                        h.unknown.push(key);
                        h.held += u64::from(held);
                    }
                    Outcome::Refused => h.refused += 1,
                }
                let incr = c.incr("kill:counter", 1).await;
                match outcome(&incr) {
                    Outcome::Acked => h.incr_acked += 1,
                    Outcome::Unknown { held } => {
                        h.incr_unknown += 1;
                        h.held += u64::from(held);
                    }
                    Outcome::Refused => h.refused += 1,
                }
                if set.is_err() || incr.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await; // no primary yet: don't spin
                }
            }
            h
        }));
    }
    let wait_acked = |n: u64, what: &'static str| {
        let acked_total = acked_total.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while acked_total.load(Ordering::Relaxed) < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: only {n} writes acknowledged"
                );
                tokio::time::sleep(Duration::from_millis(10)).await; // polling the workers' progress
            }
        }
    };
    wait_acked(300, "before the kill").await;
    tokio::task::block_in_place(|| p.kill());
    let killed_at = acked_total.load(Ordering::Relaxed);

    // The replicas notice; the one with the most records becomes the primary.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (c1, c2) = (admin(&r1).await.unwrap(), admin(&r2).await.unwrap());
    let (seq1, seq2) = loop {
        let (i1, i2) = (info(c1.clone()).await, info(c2.clone()).await);
        if i1["link"]["link_up"] == false && i2["link"]["link_up"] == false {
            break (i1["seq"].as_u64().unwrap(), i2["seq"].as_u64().unwrap());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas never noticed: {i1} {i2}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling a remote state
    };
    let (best, other) = if seq1 >= seq2 { (&r1, &r2) } else { (&r2, &r1) };
    let promoted = tokio::task::block_in_place(|| ctl(&p, best, &["promote"]));
    tokio::task::block_in_place(|| ctl(&p, other, &["replicaof", &best.endpoint()]));

    // The client finds the new primary (through the seeds) and writes go on.
    wait_acked(killed_at + 200, "after the promotion").await;
    stop_tx.send(true).unwrap();
    let mut h = History::default();
    for w in workers {
        let part = w.await.unwrap();
        h.acked.extend(part.acked);
        h.unknown.extend(part.unknown);
        h.incr_acked += part.incr_acked;
        h.incr_unknown += part.incr_unknown;
        h.held += part.held;
        h.refused += part.refused;
    }
    assert_eq!(c.endpoint(), best.endpoint(), "{promoted}");
    assert!(
        !h.unknown.is_empty() || h.incr_unknown > 0,
        "no write was in flight when the primary died"
    );
    let keys: Vec<&String> = h.acked.keys().collect();
    for chunk in keys.chunks(500) {
        let got = c.mget(chunk.iter().map(|k| k.as_str())).await.unwrap();
        for (k, g) in chunk.iter().zip(got) {
            assert_eq!(g, Some(Value::Int(h.acked[*k])), "acknowledged write {k} lost");
        }
    }
    let counter = c.get("kill:counter").await.unwrap().and_then(|v| v.as_i64()).unwrap();
    assert!(
        h.incr_acked <= counter && counter <= h.incr_acked + h.incr_unknown,
        "counter {counter}, acknowledged {}, unknown {}",
        h.incr_acked,
        h.incr_unknown
    );
    eprintln!(
        "{} SETs acknowledged, {} unknown, {} INCRs acknowledged, {} unknown ({} of the unknown answered \
         NOT_ENOUGH_REPLICAS/TIMEOUT, the others unanswered), {} refused unexecuted; counter {counter}; {}",
        h.acked.len(),
        h.unknown.len(),
        h.incr_acked,
        h.incr_unknown,
        h.held,
        h.refused,
        promoted.trim()
    );
}

/// One seed, as a Service is: a client redirected from it to the primary goes
/// back to the seed when that primary dies, and finds the node promoted there
/// (the Service's next pod) instead of retrying the dead address forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redirect_target_sends_the_client_back_to_its_seed() {
    let dir = TempDir::new("dead-redirect");
    let (mut p, r) = pair(&dir);
    let c = Client::builder()
        .endpoint(r.endpoint())
        .pool_size(2)
        .token(p.token())
        .ca_file(p.ca())
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    assert!(c.set("before", "v").await.unwrap());
    assert_eq!(c.endpoint(), p.endpoint(), "the write was not redirected");
    tokio::task::block_in_place(|| p.kill());
    tokio::task::block_in_place(|| ctl(&p, &r, &["promote"]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match c.set("after", "v").await {
            Ok(_) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the client never left the dead primary ({}): {e}",
                c.endpoint()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // between attempts, as an application would
    }
    assert_eq!(c.endpoint(), r.endpoint());
    assert_eq!(c.get("after").await.unwrap(), Some(Value::from("v")));
}
