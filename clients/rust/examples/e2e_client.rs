//! A write loop that must survive the loss of the primary: the e2e suite's Rust
//! client (`e2e/test_sdk_clients.py`), shipped as a static binary in the
//! `velocity/clients:dev` image (`hack/images/build.sh`, docs/images.md).
//!
//! ```sh
//! VDB_ENDPOINT=vdb://NAME.NAMESPACE.svc:2005 VDB_TOKEN=... VDB_CA=/ca/ca.crt \
//!     cargo run --example e2e_client -- PREFIX [STOP_FILE]
//! ```
//!
//! In a pod the token comes from the `NAME-auth` Secret (env `VDB_TOKEN`) and the
//! CA from the `NAME-ca` Secret (mounted, `VDB_CA`); `build()` reads both. The
//! loop writes `PREFIX:i = i` (i = 0, 1, ...) one after the other through
//! `VDB_ENDPOINT` (the cluster's Service) and reads each acknowledged key back
//! at once (a linearizable GET: it must see its own write), until `STOP_FILE`
//! (default `/work/stop`) exists. A failed write is sent again with the same key
//! and value (idempotent) until it is acknowledged or 30 s have passed. Then
//! every acknowledged key is read back through the Service.
//!
//! Output, one line each: `READY` once connected, `ACKED n` every 50
//! acknowledged writes, and at the end `RESULT {json}` with `acked`, `unknown`
//! (attempts whose outcome is unknown: `Error::OutcomeUnknown`, or
//! `NOT_ENOUGH_REPLICAS`, which a sync-mode primary also answers when a queued
//! write timed out), `refused` (attempts that failed without effect), `errors`
//! (the two together; each was followed by a retry), `failed` (keys never
//! acknowledged within 30 s), `error_kinds`, `reads`, `stale_reads`,
//! `read_errors`, `longest_gap_s` / `gap_at` (the longest time between two
//! acknowledged writes and the wall-clock time it ended), `lost` /
//! `lost_count` (acknowledged keys missing at the end). Exit code 0 when the
//! run completed (the counts are for the caller to judge), 1 otherwise.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use velocity_sdk::{Client, Error, ErrorCode, Value};

const RETRY_FOR: Duration = Duration::from_secs(30);
const PAUSE: Duration = Duration::from_millis(20);
const CHUNK: usize = 200;

#[derive(Default)]
struct Counts {
    acked: Vec<i64>,
    unknown: u64,
    refused: u64,
    failed: u64,
    error_kinds: BTreeMap<String, u64>,
    reads: u64,
    stale_reads: Vec<String>,
    read_errors: u64,
    longest_gap: Duration,
    gap_at: Option<f64>,
}

/// A short name for an error kind, for the `error_kinds` histogram.
fn kind(e: &Error) -> String {
    match e {
        Error::Server { code, .. } => format!("Server:{code}"),
        Error::Connect { .. } => "Connect".into(),
        Error::Tls { .. } => "Tls".into(),
        Error::OutcomeUnknown { .. } => "OutcomeUnknown".into(),
        Error::ConnectionLost { .. } => "ConnectionLost".into(),
        Error::Timeout { .. } => "Timeout".into(),
        other => format!("{other:?}")
            .split([' ', '(', '{'])
            .next()
            .unwrap_or("Other")
            .to_string(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn write_loop(client: &Client, prefix: &str, stop: &Path) -> Counts {
    let mut c = Counts::default();
    let mut last_ack = Instant::now();
    let mut i: i64 = 0;
    while !stop.exists() {
        let key = format!("{prefix}:{i}");
        let give_up = Instant::now() + RETRY_FOR;
        loop {
            match client.set(&key, i).await {
                Ok(_) => {
                    let now = Instant::now();
                    if now - last_ack > c.longest_gap {
                        c.longest_gap = now - last_ack;
                        c.gap_at = Some(unix_now());
                    }
                    last_ack = now;
                    c.acked.push(i);
                    if c.acked.len() % 50 == 0 {
                        println!("ACKED {}", c.acked.len());
                    }
                    c.reads += 1;
                    match client.get(&key).await {
                        Ok(Some(Value::Int(v))) if v == i => {}
                        Ok(other) => c.stale_reads.push(format!("{key} read {other:?}")),
                        Err(_) => c.read_errors += 1,
                    }
                    break;
                }
                Err(e) => {
                    *c.error_kinds.entry(kind(&e)).or_default() += 1;
                    if e.may_have_happened() || e.code() == Some(ErrorCode::NotEnoughReplicas) {
                        c.unknown += 1;
                    } else {
                        c.refused += 1;
                    }
                    if Instant::now() > give_up {
                        c.failed += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        i += 1;
        tokio::time::sleep(PAUSE).await;
    }
    c
}

/// The acknowledged keys that do not read back as written (each chunk retried for up to 60 s).
async fn lost(client: &Client, prefix: &str, acked: &[i64]) -> Result<Vec<i64>, Error> {
    let mut lost = Vec::new();
    for chunk in acked.chunks(CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|n| format!("{prefix}:{n}")).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let values = loop {
            match client.mget(&keys).await {
                Ok(v) => break v,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("read-back: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        lost.extend(
            chunk
                .iter()
                .zip(values)
                .filter(|(n, v)| v != &Some(Value::Int(**n)))
                .map(|(n, _)| *n),
        );
    }
    Ok(lost)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let prefix = args.next().unwrap_or_else(|| "rust".into());
    let stop = args.next().unwrap_or_else(|| "/work/stop".into());
    let endpoint = std::env::var("VDB_ENDPOINT").unwrap_or_else(|_| "vdb://127.0.0.1:2005".into());

    // Token and CA: VDB_TOKEN and VDB_CA, read by build().
    let client = match Client::builder()
        .endpoint(endpoint)
        .pool_size(2)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .client_name("e2e-rust")
        .build()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("READY");
    let c = write_loop(&client, &prefix, Path::new(&stop)).await;
    let lost = match lost(&client, &prefix, &c.acked).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("reading the acknowledged writes back failed: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = serde_json::json!({
        "client": "rust",
        "acked": c.acked.len(),
        "unknown": c.unknown,
        "refused": c.refused,
        "errors": c.unknown + c.refused,
        "failed": c.failed,
        "error_kinds": c.error_kinds,
        "reads": c.reads,
        "stale_reads": c.stale_reads.iter().take(20).collect::<Vec<_>>(),
        "stale_read_count": c.stale_reads.len(),
        "read_errors": c.read_errors,
        "longest_gap_s": (c.longest_gap.as_secs_f64() * 1000.0).round() / 1000.0,
        "gap_at": c.gap_at,
        "lost": lost.iter().take(50).collect::<Vec<_>>(),
        "lost_count": lost.len(),
        "endpoint_at_end": client.endpoint(),
    });
    println!("RESULT {result}");
    std::process::ExitCode::SUCCESS
}
