//! Rust SDK against Velocity, and redis-rs (async, multiplexed) against
//! redis-server, on this machine: 16 connections, unpipelined (1 request in
//! flight per connection) and pipelined (16 in flight per connection), SET and
//! GET of 64-byte values over 10k keys. Writes a Markdown table.
//!
//!     VELOCITY_ENGINE=.venv/bin/velocity-engine cargo run -p velocity-bench-rust -- --out docs/benchmarks-rust.md
//!
//! Both servers run plaintext on loopback (Velocity `--insecure`, durable with
//! its default `appendfsync everysec`; Redis without persistence), each
//! started on a free port and killed at the end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNS: usize = 16;
const KEYS: usize = 10_000;
const VALUE: [u8; 64] = [b'v'; 64];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /readyz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200")
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} not ready in 30 s");
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Set,
    Get,
}

struct Cell {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs `CONNS * depth` workers for `secs`, each issuing one request at a time.
async fn run<F, Fut>(depth: usize, secs: f64, f: F) -> Cell
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..CONNS * depth {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut i = w as u64 * 7919;
            while Instant::now() < stop {
                let t = Instant::now();
                f(w, i).await;
                lat.push(t.elapsed().as_nanos() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    Cell {
        ops_per_s: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn key(i: u64) -> String {
    format!("bench:{:05}", i % KEYS as u64)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .map(|i| PathBuf::from(&args[i + 1]));
    let secs: f64 = args
        .iter()
        .position(|a| a == "--secs")
        .map_or(5.0, |i| args[i + 1].parse().unwrap());
    let engine = std::env::var("VELOCITY_ENGINE").expect("VELOCITY_ENGINE: the velocity-engine executable");

    let dir = std::env::temp_dir().join(format!("bench-rust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (vport, mport, rport) = (free_port(), free_port(), free_port());
    let log = std::fs::File::create(dir.join("engine.log")).unwrap();
    let _velocity = Proc(
        Command::new(&engine)
            .args(["--data-dir", dir.join("data").to_str().unwrap(), "--insecure"])
            .args(["--port", &vport.to_string(), "--metrics-port", &mport.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let _redis = Proc(
        Command::new("redis-server")
            .args([
                "--port",
                &rport.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_for("velocity-engine", || http_ok(mport));
    wait_for("redis-server", || TcpStream::connect(("127.0.0.1", rport)).is_ok());

    let vdb = velocity_sdk::Client::builder()
        .endpoint(format!("vdb://127.0.0.1:{vport}"))
        .insecure()
        .pool_size(CONNS)
        .build()
        .await
        .unwrap();
    let redis_client = redis::Client::open(format!("redis://127.0.0.1:{rport}/")).unwrap();
    let mut rconns = Vec::new();
    for _ in 0..CONNS {
        rconns.push(redis_client.get_multiplexed_async_connection().await.unwrap());
    }
    let rconns = Arc::new(rconns);
    for i in 0..KEYS as u64 {
        vdb.set(key(i), VALUE.to_vec()).await.unwrap();
    }

    let mut rows = Vec::new();
    for (depth, label) in [
        (1, "unpipelined (1 in flight/conn)"),
        (16, "pipelined (16 in flight/conn)"),
    ] {
        for op in [Op::Set, Op::Get] {
            let v = vdb.clone();
            let vcell = run(depth, secs, move |_, i| {
                let v = v.clone();
                async move {
                    match op {
                        Op::Set => drop(v.set(key(i), VALUE.to_vec()).await.unwrap()),
                        Op::Get => drop(v.get(key(i)).await.unwrap()),
                    }
                }
            })
            .await;
            let rc = rconns.clone();
            let rcell = run(depth, secs, move |w, i| {
                let mut c = rc[w % CONNS].clone();
                async move {
                    match op {
                        Op::Set => {
                            let _: () = redis::AsyncCommands::set(&mut c, key(i), &VALUE[..]).await.unwrap();
                        }
                        Op::Get => {
                            let _: Option<Vec<u8>> = redis::AsyncCommands::get(&mut c, key(i)).await.unwrap();
                        }
                    }
                }
            })
            .await;
            eprintln!(
                "{label} {op:?}: velocity {:.0} ops/s p99 {:.0} us; redis {:.0} ops/s p99 {:.0} us",
                vcell.ops_per_s, vcell.p99_us, rcell.ops_per_s, rcell.p99_us
            );
            rows.push((label, op, vcell, rcell));
        }
    }

    let mut md = String::new();
    md.push_str("# Rust SDK benchmark\n\n");
    md.push_str(&format!(
        "`make bench-rust` (bench/rust): the Rust SDK (`velocity-sdk`) against Velocity, and `redis-rs` {} \
         (async, multiplexed connections) against redis-server, on the same machine in the same run. \
         {CONNS} connections; unpipelined = 1 request in flight per connection ({CONNS} workers), \
         pipelined = 16 in flight per connection ({} workers); SET/GET of 64-byte values over {KEYS} keys; \
         {secs} s per cell; plaintext loopback (Velocity `--insecure`, appendfsync everysec; Redis without \
         persistence); the bench binary is built with the workspace dev profile (dependencies at opt-level 2). \
         Machine: {} CPUs shared with other work, so compare the two columns of one row, not runs.\n\n",
        "0.32",
        CONNS * 16,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    md.push_str(
        "| cell | Velocity + Rust SDK ops/s | p50 us | p99 us | Redis + redis-rs ops/s | p50 us | p99 us | ratio |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (label, op, v, r) in &rows {
        md.push_str(&format!(
            "| {op:?} {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x |\n",
            v.ops_per_s,
            v.p50_us,
            v.p99_us,
            r.ops_per_s,
            r.p50_us,
            r.p99_us,
            v.ops_per_s / r.ops_per_s
        ));
    }
    // The same cells from the Go load generator against the same engine: the SDK
    // is not the bottleneck when it reaches what vbench gets out of the server.
    let vbench = std::env::var("VBENCH").unwrap_or_else(|_| "bench/.build/vbench".into());
    if std::path::Path::new(&vbench).exists() {
        md.push_str(&format!(
            "\nbench/vbench (Go) against the same Velocity engine in the same run, same cells \
             (`{vbench} -p PORT -insecure -c {CONNS} -P 1|16 -d 64 -r {KEYS} -t set,get -duration {secs}s -q`):\n\n```\n"
        ));
        for depth in [1, 16] {
            let out = Command::new(&vbench)
                .args([
                    "-p",
                    &vport.to_string(),
                    "-insecure",
                    "-c",
                    &CONNS.to_string(),
                    "-P",
                    &depth.to_string(),
                ])
                .args(["-d", "64", "-r", &KEYS.to_string(), "-t", "set,get", "-n", "100000000"])
                .args(["-duration", &format!("{secs}s"), "-q"])
                .output()
                .expect("vbench");
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                md.push_str(&format!("P={depth:<2} {line}\n"));
            }
        }
        md.push_str("```\n");
    }
    print!("{md}");
    if let Some(path) = out {
        std::fs::write(&path, &md).unwrap();
        eprintln!("wrote {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
