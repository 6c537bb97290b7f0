//! Rust SDK against Velocity, and redis-rs (async, multiplexed) against
//! redis-server, on this machine: 16 connections, unpipelined (1 request in
//! flight per connection) and pipelined (16 in flight per connection), SET and
//! GET of 64-byte values over 10k keys. Writes a Markdown page.
//!
//!     VELOCITY_ENGINE=.venv/bin/velocity-engine cargo run -p velocity-bench-rust -- --out docs/benchmarks-rust.md
//!         [--secs 5] [--cells get-p16,set-p1] [--no-redis]
//!
//! Placement, as in the other benchmarks: every server is pinned to CPU 0
//! (`taskset -c 0`), this process (the clients: the SDK, redis-rs and the
//! vbench it runs) to CPU 1. Both servers run plaintext on loopback, durable
//! with an everysec log (Velocity's default; Redis `appendonly yes`,
//! `appendfsync everysec`), each on a free port, killed at the end.
//!
//! Per cell the SDK and bench/vbench (the Go load generator) drive the same
//! Velocity engine back to back, and the CPU time of each client and of the
//! server is measured (/proc): the SDK is "not the bottleneck" when it gets
//! what vbench gets out of the server, and its CPU per request says how much
//! headroom it has. A last table drives a null V-Proto server (canned replies,
//! no storage; `--null-server`) so that the client is the limit: the SDK's
//! ceiling on one core against vbench's.

mod null_server;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNS: usize = 16;
const KEYS: usize = 10_000;
const VALUE_LEN: usize = 64;
const VALUE: [u8; VALUE_LEN] = [b'v'; VALUE_LEN];
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

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

/// A server process pinned to [`SERVER_CPU`] (taskset execs it: same pid).
fn start_pinned(program: &Path, args: &[String], log: Stdio) -> Proc {
    Proc(
        Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display())),
    )
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

// -- CPU accounting (/proc/PID/stat) -----------------------------------------------

/// Clock ticks per second of /proc's CPU times.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime, stime, cutime, cstime of a process, in ticks.
fn cpu_ticks(pid: &str) -> [u64; 4] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    [at(14), at(15), at(16), at(17)]
}

/// CPU seconds of this process (`own`) and of its reaped children, and of another process.
#[derive(Clone, Copy)]
struct CpuMark {
    own: u64,
    children: u64,
    server: u64,
}

fn mark(server_pid: u32) -> CpuMark {
    let me = cpu_ticks("self");
    let s = cpu_ticks(&server_pid.to_string());
    CpuMark {
        own: me[0] + me[1],
        children: me[2] + me[3],
        server: s[0] + s[1],
    }
}

// -- one cell ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

#[derive(Clone, Copy, Default)]
struct Cell {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Client CPU per request, µs (the SDK: includes this harness's timing; vbench: its own).
    client_us: f64,
    /// Server CPU per request, µs (0 when not measured).
    server_us: f64,
}

/// Latencies in a log-linear histogram (64 buckets per power of two: within
/// 1.6 %), shared by the workers of a cell: recording one is an uncontended
/// atomic add on a cache-hot bucket (no allocation, no cache misses on
/// per-worker arrays that would be the harness's cost, not the client's).
struct Hist(Vec<AtomicU64>);

impl Hist {
    const SUB: u32 = 6;

    fn new() -> Self {
        Hist(
            (0..(64 - Self::SUB as usize + 1) << Self::SUB)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    fn record(&self, ns: u64) {
        self.0[Self::index(ns)].fetch_add(1, Ordering::Relaxed);
    }

    fn index(ns: u64) -> usize {
        let msb = 63 - (ns | 1).leading_zeros();
        if msb < Self::SUB {
            return ns as usize;
        }
        let shift = msb - Self::SUB;
        (((shift + 1) << Self::SUB) as usize) + ((ns >> shift) as usize & ((1 << Self::SUB) - 1))
    }

    /// The smallest value of bucket `i`.
    fn value(i: usize) -> u64 {
        let sub = 1usize << Self::SUB;
        if i < sub {
            return i as u64;
        }
        let shift = (i >> Self::SUB) as u32 - 1;
        ((sub + (i & (sub - 1))) as u64) << shift
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    fn percentile_us(&self, p: f64) -> f64 {
        let want = ((self.count() as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n.load(Ordering::Relaxed);
            if seen >= want {
                return Self::value(i) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

/// Runs `CONNS * depth` workers for `secs`, each issuing one request at a time.
async fn run<F, Fut>(depth: usize, secs: f64, f: F) -> (Cell, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let all = Arc::new(Hist::new());
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..CONNS * depth {
        let (f, lat) = (f.clone(), all.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64 * 7919;
            loop {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                f(w, i).await;
                lat.record(t.elapsed().as_nanos() as u64);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = all.count();
    let cell = Cell {
        ops_per_s: n as f64 / elapsed,
        p50_us: all.percentile_us(0.50),
        p99_us: all.percentile_us(0.99),
        ..Cell::default()
    };
    (cell, n)
}

/// Key `i` of the [`KEYS`] keys, `bench:00042`: made once, side by side in one
/// string (formatting one per request, or chasing a pointer per key, would be
/// the harness's cost, not the client's).
fn key(i: u64) -> &'static str {
    const LEN: usize = "bench:00000".len();
    static NAMES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| (0..KEYS).map(|k| format!("bench:{k:05}")).collect());
    let k = (i % KEYS as u64) as usize;
    &names[k * LEN..(k + 1) * LEN]
}

/// One vbench run (`-q` output: `GET: 208269.98 requests per second, p50=1.223 msec p99=2.478 ...`).
fn vbench(bin: &str, port: u16, depth: usize, op: Op, secs: f64, tck: f64, server_pid: u32) -> Cell {
    let test = match op {
        Op::Set => "set",
        Op::Get => "get",
    };
    let before = mark(server_pid);
    let out = Command::new(bin)
        .args(["-p", &port.to_string(), "-insecure", "-c", &CONNS.to_string()])
        .args([
            "-P",
            &depth.to_string(),
            "-d",
            &VALUE_LEN.to_string(),
            "-r",
            &KEYS.to_string(),
        ])
        .args(["-t", test, "-n", "100000000", "-duration", &format!("{secs}s"), "-q"])
        .output()
        .expect("vbench");
    let after = mark(server_pid);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("requests per second"))
        .unwrap_or_else(|| panic!("vbench printed no result:\n{text}"));
    let num = |after: &str| -> f64 {
        line.split(after)
            .nth(1)
            .and_then(|r| r.split([' ', ',']).find(|s| !s.is_empty()))
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let ops_per_s = num(": ");
    let requests = ops_per_s * secs;
    Cell {
        ops_per_s,
        p50_us: num("p50=") * 1000.0,
        p99_us: num("p99=") * 1000.0,
        client_us: (after.children - before.children) as f64 / tck / requests * 1e6,
        server_us: (after.server - before.server) as f64 / tck / requests * 1e6,
    }
}

/// The SDK against `vdb` for one cell, with CPU accounting.
async fn sdk_cell(vdb: &velocity_sdk::Client, op: Op, depth: usize, secs: f64, tck: f64, server_pid: u32) -> Cell {
    let v = vdb.clone();
    let before = mark(server_pid);
    let (mut cell, n) = run(depth, secs, move |_, i| {
        let v = v.clone();
        async move {
            match op {
                Op::Set => drop(v.set(key(i), VALUE.to_vec()).await.unwrap()),
                Op::Get => drop(v.get(key(i)).await.unwrap()),
            }
        }
    })
    .await;
    let after = mark(server_pid);
    cell.client_us = (after.own - before.own) as f64 / tck / n as f64 * 1e6;
    cell.server_us = (after.server - before.server) as f64 / tck / n as f64 * 1e6;
    cell
}

/// Pins this process (all its threads: call it before any is started) to `cpu`.
fn pin_self(cpu: &str) {
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset -p -c {cpu} {pid} failed");
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).map(|i| args[i + 1].as_str())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(port) = arg(&args, "--null-server") {
        null_server::run(port.parse().unwrap(), VALUE_LEN);
        return;
    }
    let machine_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    pin_self(CLIENT_CPU);
    // One worker thread: the client has one CPU, as vbench (GOMAXPROCS follows the affinity).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(args, machine_cpus));
}

async fn bench(args: Vec<String>, machine_cpus: usize) {
    let out = arg(&args, "--out").map(PathBuf::from);
    let secs: f64 = arg(&args, "--secs").map_or(5.0, |s| s.parse().unwrap());
    // `--cells get-p16,set-p1`: only these cells (to profile one); default all.
    let cells: Option<Vec<String>> = arg(&args, "--cells").map(|c| c.split(',').map(str::to_owned).collect());
    let no_redis = args.iter().any(|a| a == "--no-redis");
    let engine =
        PathBuf::from(std::env::var("VELOCITY_ENGINE").expect("VELOCITY_ENGINE: the velocity-engine executable"));
    let vbench_bin = std::env::var("VBENCH").unwrap_or_else(|_| "bench/.build/vbench".into());
    assert!(
        Path::new(&vbench_bin).exists(),
        "{vbench_bin} is missing: make vbench (or set VBENCH)"
    );
    let tck = clk_tck();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let dir = std::env::temp_dir().join(format!("bench-rust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("redis")).unwrap();
    let (vport, mport, rport, nport) = (free_port(), free_port(), free_port(), free_port());
    let log = std::fs::File::create(dir.join("engine.log")).unwrap();
    let s = |x: &str| x.to_owned();
    let velocity = start_pinned(
        &engine,
        &[
            s("--data-dir"),
            dir.join("data").to_string_lossy().into_owned(),
            s("--insecure"),
            s("--port"),
            vport.to_string(),
            s("--metrics-port"),
            mport.to_string(),
        ],
        Stdio::from(log),
    );
    let redis = (!no_redis).then(|| {
        start_pinned(
            Path::new("redis-server"),
            &[
                s("--port"),
                rport.to_string(),
                s("--bind"),
                s("127.0.0.1"),
                s("--save"),
                s(""),
                s("--appendonly"),
                s("yes"),
                s("--appendfsync"),
                s("everysec"),
                s("--dir"),
                dir.join("redis").to_string_lossy().into_owned(),
            ],
            Stdio::null(),
        )
    });
    let null = start_pinned(
        &std::env::current_exe().unwrap(),
        &[s("--null-server"), nport.to_string()],
        Stdio::inherit(),
    );
    wait_for("velocity-engine", || http_ok(mport));
    if redis.is_some() {
        wait_for("redis-server", || TcpStream::connect(("127.0.0.1", rport)).is_ok());
    }
    wait_for("null server", || TcpStream::connect(("127.0.0.1", nport)).is_ok());
    let vpid = velocity.0.id();

    let connect = |port: u16| {
        velocity_sdk::Client::builder()
            .endpoint(format!("vdb://127.0.0.1:{port}"))
            .insecure()
            .pool_size(CONNS)
            .build()
    };
    let vdb = connect(vport).await.unwrap();
    let nulldb = connect(nport).await.unwrap();
    let mut rconns = Vec::new();
    if !no_redis {
        let redis_client = redis::Client::open(format!("redis://127.0.0.1:{rport}/")).unwrap();
        for _ in 0..CONNS {
            rconns.push(redis_client.get_multiplexed_async_connection().await.unwrap());
        }
    }
    let rconns = Arc::new(rconns);
    for i in 0..KEYS as u64 {
        if args.iter().any(|a| a == "--null-only") {
            break;
        }
        vdb.set(key(i), VALUE.to_vec()).await.unwrap();
    }

    let wanted = |op: Op, depth: usize| {
        let name = format!("{op:?}-p{depth}").to_lowercase();
        cells.as_ref().is_none_or(|c| c.contains(&name))
    };
    // `--null-only`: only the null-server ceiling (to profile the SDK alone).
    let null_only = args.iter().any(|a| a == "--null-only");
    let wanted_real = |op: Op, depth: usize| !null_only && wanted(op, depth);
    let mut rows = Vec::new();
    for depth in [1, 16] {
        for op in [Op::Set, Op::Get] {
            if !wanted_real(op, depth) {
                continue;
            }
            let sdk = sdk_cell(&vdb, op, depth, secs, tck, vpid).await;
            let vb = {
                let bin = vbench_bin.clone();
                tokio::task::spawn_blocking(move || vbench(&bin, vport, depth, op, secs, tck, vpid))
                    .await
                    .unwrap()
            };
            let mut rcell = None;
            if let Some(r) = &redis {
                let rpid = r.0.id();
                let rc = rconns.clone();
                let before = mark(rpid);
                let (mut cell, n) = run(depth, secs, move |w, i| {
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
                let after = mark(rpid);
                cell.client_us = (after.own - before.own) as f64 / tck / n as f64 * 1e6;
                cell.server_us = (after.server - before.server) as f64 / tck / n as f64 * 1e6;
                rcell = Some(cell);
            }
            eprintln!(
                "{op:?} P={depth}: SDK {:.0} ops/s ({:.1} us CPU/op), vbench {:.0} ops/s ({:.1} us CPU/op){}",
                sdk.ops_per_s,
                sdk.client_us,
                vb.ops_per_s,
                vb.client_us,
                rcell.map_or(String::new(), |r| format!(
                    ", redis-rs {:.0} ops/s ({:.1} us CPU/op)",
                    r.ops_per_s, r.client_us
                ))
            );
            rows.push((op, depth, sdk, vb, rcell));
        }
    }
    let mut ceiling = Vec::new();
    for depth in [1, 16] {
        if !wanted(Op::Get, depth) {
            continue;
        }
        let sdk = sdk_cell(&nulldb, Op::Get, depth, secs, tck, null.0.id()).await;
        let npid = null.0.id();
        let bin = vbench_bin.clone();
        let vb = tokio::task::spawn_blocking(move || vbench(&bin, nport, depth, Op::Get, secs, tck, npid))
            .await
            .unwrap();
        eprintln!(
            "null server GET P={depth}: SDK {:.0} ops/s ({:.2} us CPU/op), vbench {:.0} ops/s ({:.2} us CPU/op)",
            sdk.ops_per_s, sdk.client_us, vb.ops_per_s, vb.client_us
        );
        ceiling.push((depth, sdk, vb));
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let md = report(&rows, &ceiling, secs, machine_cpus, &load_before, &load_after);
    print!("{md}");
    if let Some(path) = out {
        std::fs::write(&path, &md).unwrap();
        eprintln!("wrote {}", path.display());
    }
    drop((velocity, redis, null));
    let _ = std::fs::remove_dir_all(&dir);
}

type Row = (Op, usize, Cell, Cell, Option<Cell>);

fn report(
    rows: &[Row],
    ceiling: &[(usize, Cell, Cell)],
    secs: f64,
    machine_cpus: usize,
    load_before: &str,
    load_after: &str,
) -> String {
    let load1 = |s: &str| s.split_whitespace().next().unwrap_or("?").to_owned();
    let op_name = |op: &Op| format!("{op:?}").to_uppercase();
    let mut md = String::new();
    md.push_str("# Rust SDK benchmark\n\n");
    md.push_str(&format!(
        "`make bench-rust` (bench/rust, one run): the Rust SDK (`velocity-sdk`) against Velocity, bench/vbench \
         (the Go load generator) against the same engine right after it, and `redis-rs` 0.32 (async, \
         multiplexed connections) against redis-server. {CONNS} connections; P=1: one request in flight per \
         connection ({CONNS} callers); P=16: 16 in flight per connection ({} callers, each awaiting one request \
         at a time, as an application's tasks do); SET/GET of {VALUE_LEN}-byte values over {KEYS} keys; {secs} s \
         per cell. Every server pinned to CPU {SERVER_CPU}, the clients to CPU {CLIENT_CPU} (the SDK and redis-rs \
         on a one-worker tokio runtime; vbench's Go runtime follows the affinity); plaintext loopback; Velocity \
         (the Python engine) with its defaults (durable, appendfsync everysec), Redis with `appendonly yes`, \
         `appendfsync everysec`. The bench is built with the workspace dev profile (opt-level 1, dependencies \
         at 2). CPU columns are user + system time per request from /proc: the client's (the SDK's and \
         redis-rs's include this harness's latency bookkeeping) and the server's. The machine ({machine_cpus} \
         CPUs) was shared with other work (1-minute load average {} at the start, {} at the end): ops/s move \
         between runs, so compare within a row; CPU per request moves much less.\n\n",
        CONNS * 16,
        load1(load_before),
        load1(load_after),
    ));
    md.push_str(
        "## The SDK against vbench, same engine\n\n\
         The SDK is not the bottleneck when it gets as much out of the server as vbench does (SDK/vbench near \
         1 or above). Server CPU per request falls as batches grow: it shows which client fed the server \
         larger batches.\n\n",
    );
    md.push_str(
        "| cell | SDK ops/s | p50 us | p99 us | SDK CPU us/op | server CPU us/op | vbench ops/s | p50 us \
         | p99 us | vbench CPU us/op | server CPU us/op | SDK/vbench |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (op, depth, s, v, _) in rows {
        md.push_str(&format!(
            "| {} P={depth} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2}x |\n",
            op_name(op),
            s.ops_per_s,
            s.p50_us,
            s.p99_us,
            s.client_us,
            s.server_us,
            v.ops_per_s,
            v.p50_us,
            v.p99_us,
            v.client_us,
            v.server_us,
            s.ops_per_s / v.ops_per_s,
        ));
    }
    if rows.iter().any(|r| r.4.is_some()) {
        md.push_str("\n## Velocity + Rust SDK against Redis + redis-rs\n\n");
        md.push_str(
            "| cell | Velocity + SDK ops/s | p50 us | p99 us | SDK CPU us/op | Redis + redis-rs ops/s | p50 us \
             | p99 us | redis-rs CPU us/op | Redis CPU us/op | ops/s ratio |\n",
        );
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (op, depth, s, _, r) in rows {
            let Some(r) = r else { continue };
            md.push_str(&format!(
                "| {} P={depth} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2}x |\n",
                op_name(op),
                s.ops_per_s,
                s.p50_us,
                s.p99_us,
                s.client_us,
                r.ops_per_s,
                r.p50_us,
                r.p99_us,
                r.client_us,
                r.server_us,
                s.ops_per_s / r.ops_per_s
            ));
        }
    }
    if !ceiling.is_empty() {
        md.push_str(
            "\n## The clients' ceiling: a null V-Proto server\n\n\
             The GET cells against `bench-rust --null-server` (canned replies with a 64-byte value, no storage, \
             one thread, pinned to CPU 0): the server costs well under a microsecond per request, so the client \
             on its one CPU is the limit.\n\n",
        );
        md.push_str("| cell | SDK ops/s | p50 us | p99 us | SDK CPU us/op | vbench ops/s | p50 us | p99 us | vbench CPU us/op | SDK/vbench |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (depth, s, v) in ceiling {
            md.push_str(&format!(
                "| GET P={depth} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2}x |\n",
                s.ops_per_s,
                s.p50_us,
                s.p99_us,
                s.client_us,
                v.ops_per_s,
                v.p50_us,
                v.p99_us,
                v.client_us,
                s.ops_per_s / v.ops_per_s
            ));
        }
    }
    md
}
