//! Group-committed WAL appends, four ways, in one run (issue 13, "io_uring").
//!
//! Every mode has the shape of velocity-lsm's `wal_writer.rs`: N committer threads
//! each append one record of S bytes under the commit lock, then block until a
//! dedicated sync thread reports a sync that covered it (group commit: one sync for
//! everything appended while the previous one ran). What differs is who writes and
//! through which interface:
//!
//! | mode | commit path (under the lock) | sync thread |
//! |---|---|---|
//! | `write+fdatasync` | `write()` to an O_APPEND file (velocity-lsm today) | `fdatasync()` |
//! | `write+uring-fsync` | `write()` (same) | io_uring `FSYNC(DATASYNC)`, submit-and-wait |
//! | `buffer+pwrite+fdatasync` | copy into a memory buffer | `pwrite()` of the whole buffer, `fdatasync()` |
//! | `buffer+uring-linked` | copy into a memory buffer | io_uring `WRITE` linked (`IOSQE_IO_LINK`) to `FSYNC(DATASYNC)`: one `io_uring_enter` |
//!
//! The third mode is the control for the fourth: it batches the writes the same way
//! with plain syscalls, so the difference between them is io_uring itself.
//!
//! Reported per cell: commits/s, commit latency p50/p99 (append start to durability
//! seen by the committer), process CPU per commit (getrusage: all threads, user+sys),
//! commits per sync, and *other util* (machine busy time not ours, per second: the
//! noise of the other work on the machine). After each run the file is read back and
//! must hold records 1..=n in order, whole.
//!
//! ```sh
//! cargo run --release -p velocity-wal-bench -- --dir /work/tmp/walbench --secs 2 --repeat 3
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    WriteFdatasync,
    WriteUringFsync,
    BufferPwriteFdatasync,
    BufferUringLinked,
}

impl Mode {
    const ALL: [Mode; 4] = [
        Mode::WriteFdatasync,
        Mode::WriteUringFsync,
        Mode::BufferPwriteFdatasync,
        Mode::BufferUringLinked,
    ];
    fn name(self) -> &'static str {
        match self {
            Mode::WriteFdatasync => "write+fdatasync",
            Mode::WriteUringFsync => "write+uring-fsync",
            Mode::BufferPwriteFdatasync => "buffer+pwrite+fdatasync",
            Mode::BufferUringLinked => "buffer+uring-linked",
        }
    }
    fn buffered(self) -> bool {
        matches!(self, Mode::BufferPwriteFdatasync | Mode::BufferUringLinked)
    }
    fn uring(self) -> bool {
        matches!(self, Mode::WriteUringFsync | Mode::BufferUringLinked)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the commit path and the sync thread share (velocity-lsm's `SyncState`).
struct State {
    /// Last seq whose bytes are in the file (write modes) or in `pending` (buffer modes).
    appended: u64,
    /// Buffer modes: records appended since the sync thread last took the buffer.
    pending: Vec<u8>,
    stopping: bool,
    failed: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake_sync: Condvar,
    synced: AtomicU64,
    synced_lock: Mutex<()>,
    synced_cond: Condvar,
    syncs: AtomicU64,
}

impl Shared {
    fn advance(&self, seq: u64) {
        let _g = lock(&self.synced_lock);
        self.synced.store(seq, Ordering::Release);
        self.synced_cond.notify_all();
    }

    fn fail(&self, why: String) {
        lock(&self.state).failed = Some(why);
        let _g = lock(&self.synced_lock);
        self.synced_cond.notify_all();
    }

    fn wait_synced(&self, seq: u64) -> Result<(), String> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let mut g = lock(&self.synced_lock);
        while self.synced.load(Ordering::Acquire) < seq {
            if let Some(why) = lock(&self.state).failed.clone() {
                return Err(why);
            }
            g = self.synced_cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// The sync thread's handle on the file: a plain fd or a ring beside it.
struct Syncer {
    file: Arc<File>,
    ring: Option<IoUring>,
    /// Buffer modes: where the next batch goes (the sync thread is the only writer).
    offset: u64,
}

fn cqe_result(res: i32, what: &str) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::new(
            io::Error::from_raw_os_error(-res).kind(),
            format!("io_uring {what}: {}", io::Error::from_raw_os_error(-res)),
        ))
    } else {
        Ok(res as u32)
    }
}

impl Syncer {
    fn uring_fsync(&mut self) -> io::Result<()> {
        let ring = self.ring.as_mut().expect("uring mode has a ring");
        let e = opcode::Fsync::new(types::Fd(self.file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(2);
        // SAFETY: the entry references no memory; the fd outlives the call.
        unsafe { ring.submission().push(&e) }.map_err(|_| io::Error::other("submission queue full"))?;
        ring.submit_and_wait(1)?;
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| io::Error::other("no completion"))?;
        cqe_result(cqe.result(), "fsync").map(|_| ())
    }

    /// Write `buf` at the current offset and make it durable with one submission.
    ///
    /// The link makes the kernel start the fsync only after the write completed in
    /// full; a short write cancels the fsync (-ECANCELED), and then the rest is
    /// written and synced by a second round.
    fn uring_write_sync(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let fd = types::Fd(self.file.as_raw_fd());
        let ring = self.ring.as_mut().expect("uring mode has a ring");
        loop {
            let w = opcode::Write::new(fd, buf.as_ptr(), buf.len() as u32)
                .offset(self.offset)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(1);
            let s = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(2);
            // SAFETY: `buf` stays alive and unmoved until both completions are reaped
            // below (submit_and_wait(2) returns only then); the fd outlives the call.
            unsafe {
                let mut sq = ring.submission();
                sq.push(&w).map_err(|_| io::Error::other("submission queue full"))?;
                sq.push(&s).map_err(|_| io::Error::other("submission queue full"))?;
            }
            ring.submit_and_wait(2)?;
            let (mut wrote, mut synced) = (None, None);
            for cqe in ring.completion() {
                match cqe.user_data() {
                    1 => wrote = Some(cqe.result()),
                    _ => synced = Some(cqe.result()),
                }
            }
            let wrote = cqe_result(wrote.ok_or_else(|| io::Error::other("no write completion"))?, "write")?;
            self.offset += u64::from(wrote);
            buf = &buf[wrote as usize..];
            let synced = synced.ok_or_else(|| io::Error::other("no fsync completion"))?;
            if buf.is_empty() {
                return cqe_result(synced, "fsync").map(|_| ());
            }
            if wrote == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "io_uring write wrote nothing"));
            }
            // Short write: the fsync was cancelled; go round with the rest.
        }
    }

    fn sync(&mut self, mode: Mode, batch: &[u8]) -> io::Result<()> {
        match mode {
            Mode::WriteFdatasync => self.file.sync_data(),
            Mode::WriteUringFsync => self.uring_fsync(),
            Mode::BufferPwriteFdatasync => {
                self.file.write_all_at(batch, self.offset)?;
                self.offset += batch.len() as u64;
                self.file.sync_data()
            }
            Mode::BufferUringLinked => self.uring_write_sync(batch),
        }
    }
}

fn sync_loop(shared: Arc<Shared>, mode: Mode, mut syncer: Syncer) {
    let mut batch = Vec::new();
    loop {
        let target = {
            let mut st = lock(&shared.state);
            loop {
                if st.stopping && st.appended <= shared.synced.load(Ordering::Acquire) {
                    return;
                }
                if st.appended > shared.synced.load(Ordering::Acquire) {
                    break;
                }
                st = shared.wake_sync.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if mode.buffered() {
                batch.clear();
                std::mem::swap(&mut batch, &mut st.pending);
            }
            st.appended
        };
        match syncer.sync(mode, &batch) {
            Ok(()) => {
                shared.syncs.fetch_add(1, Ordering::Relaxed);
                shared.advance(target);
            }
            Err(e) => {
                shared.fail(format!("{}: {e}", mode.name()));
                return;
            }
        }
    }
}

struct Wal {
    shared: Arc<Shared>,
    file: Arc<File>,
    mode: Mode,
}

impl Wal {
    /// Append one record; returns its seq (the record's first 8 bytes are set to it).
    fn append(&self, record: &mut [u8]) -> Result<u64, String> {
        let mut st = lock(&self.shared.state);
        if let Some(why) = &st.failed {
            return Err(why.clone());
        }
        let seq = st.appended + 1;
        record[..8].copy_from_slice(&seq.to_le_bytes());
        if self.mode.buffered() {
            st.pending.extend_from_slice(record);
        } else {
            (&*self.file).write_all(record).map_err(|e| format!("write: {e}"))?;
        }
        st.appended = seq;
        drop(st);
        self.shared.wake_sync.notify_one();
        Ok(seq)
    }
}

#[derive(Clone, Debug)]
struct Cell {
    ops: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    per_sync: f64,
    other_util: f64,
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF covers all threads.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Busy seconds of the whole machine (all CPUs) from /proc/stat.
fn machine_busy_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = s.lines().next().unwrap_or("");
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return 0.0;
    }
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let total: f64 = v.iter().take(8).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (total - v[3] - v.get(4).copied().unwrap_or(0.0)) / hz
}

fn open_file(path: &Path, mode: Mode) -> io::Result<File> {
    // A new file each run, as a new WAL segment is (O_APPEND cannot be combined with O_TRUNC).
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut o = OpenOptions::new();
    o.create_new(true).read(true);
    if mode.buffered() {
        o.write(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

/// The file must hold records 1..=n of `size` bytes, in order.
fn verify(path: &Path, size: usize, n: u64) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("reading back {}: {e}", path.display()))?;
    if data.len() as u64 != n * size as u64 {
        return Err(format!(
            "{} holds {} bytes, want {} records of {size}",
            path.display(),
            data.len(),
            n
        ));
    }
    for (i, rec) in data.chunks(size).enumerate() {
        let mut s = [0u8; 8];
        s.copy_from_slice(&rec[..8]);
        if u64::from_le_bytes(s) != i as u64 + 1 || rec[8..].iter().any(|&b| b != 0xab) {
            return Err(format!("record {} of {} is wrong", i + 1, path.display()));
        }
    }
    Ok(())
}

fn run(dir: &Path, mode: Mode, threads: usize, size: usize, secs: f64) -> Result<Cell, String> {
    let path = dir.join(format!("wal-{}-{threads}-{size}.log", mode.name()));
    let file = Arc::new(open_file(&path, mode).map_err(|e| format!("opening {}: {e}", path.display()))?);
    let ring = if mode.uring() {
        Some(IoUring::new(8).map_err(|e| format!("io_uring_setup: {e}"))?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            appended: 0,
            pending: Vec::with_capacity(1 << 20),
            stopping: false,
            failed: None,
        }),
        wake_sync: Condvar::new(),
        synced: AtomicU64::new(0),
        synced_lock: Mutex::new(()),
        synced_cond: Condvar::new(),
        syncs: AtomicU64::new(0),
    });
    let syncer = Syncer {
        file: file.clone(),
        ring,
        offset: 0,
    };
    let s2 = shared.clone();
    let sync_thread = std::thread::spawn(move || sync_loop(s2, mode, syncer));
    let wal = Arc::new(Wal {
        shared: shared.clone(),
        file,
        mode,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds();
    let busy0 = machine_busy_seconds();
    let t0 = Instant::now();
    let committers: Vec<_> = (0..threads)
        .map(|_| {
            let wal = wal.clone();
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<Vec<u32>, String> {
                let mut record = vec![0xabu8; size];
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let seq = wal.append(&mut record)?;
                    wal.shared.wait_synced(seq)?;
                    lat.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                }
                Ok(lat)
            })
        })
        .collect();
    // The measured window is a fixed wall-clock span; committers finish their commit in flight.
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut err = None;
    for h in committers {
        match h.join().map_err(|_| "committer panicked".to_string()).and_then(|r| r) {
            Ok(l) => lat.extend(l),
            Err(e) => err = Some(e),
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let busy = machine_busy_seconds() - busy0;
    lock(&shared.state).stopping = true;
    shared.wake_sync.notify_all();
    sync_thread.join().map_err(|_| "sync thread panicked".to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    let n = lat.len() as u64;
    let appended = lock(&shared.state).appended;
    if appended != n {
        return Err(format!("{appended} appended but {n} committers returned"));
    }
    verify(&path, size, n)?;
    let _ = std::fs::remove_file(&path);
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize] as f64 / 1e3;
    Ok(Cell {
        ops: n as f64 / wall,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us: cpu * 1e6 / n as f64,
        per_sync: n as f64 / shared.syncs.load(Ordering::Relaxed).max(1) as f64,
        other_util: ((busy - cpu) / wall).max(0.0),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// What this kernel allows: io_uring_disabled, a ring, and the two opcodes we use.
fn uring_report() -> Result<(), String> {
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Seccomp:"))
        .map(|l| l.trim_start_matches("Seccomp:").trim().to_string())
        .unwrap_or_else(|| "?".into());
    let ring = IoUring::new(8).map_err(|e| format!("io_uring_setup failed: {e}"))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("IORING_REGISTER_PROBE failed: {e}"))?;
    println!(
        "kernel {}, io_uring_disabled={disabled}, seccomp mode {seccomp}, ring ok, WRITE {} FSYNC {}",
        uname.trim(),
        if probe.is_supported(opcode::Write::CODE) {
            "supported"
        } else {
            "MISSING"
        },
        if probe.is_supported(opcode::Fsync::CODE) {
            "supported"
        } else {
            "MISSING"
        },
    );
    Ok(())
}

fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| x.trim().parse().map_err(|_| format!("bad list item {x:?}")))
        .collect()
}

fn main() -> Result<(), String> {
    let mut dir = PathBuf::from("/tmp/velocity-wal-bench");
    let mut secs = 2.0;
    let mut repeat = 3;
    let mut threads = vec![1usize, 8, 50];
    let mut sizes = vec![100usize, 4096];
    let mut modes = Mode::ALL.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = PathBuf::from(val()?),
            "--secs" => secs = val()?.parse().map_err(|_| "bad --secs")?,
            "--repeat" => repeat = val()?.parse().map_err(|_| "bad --repeat")?,
            "--threads" => threads = list(&val()?)?,
            "--sizes" => sizes = list(&val()?)?,
            "--modes" => {
                let names = val()?;
                modes = names
                    .split(',')
                    .map(|n| {
                        Mode::ALL
                            .into_iter()
                            .find(|m| m.name() == n)
                            .ok_or_else(|| format!("unknown mode {n:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => {
                println!(
                    "wal-bench [--dir D] [--secs S] [--repeat R] [--threads 1,8,50] [--sizes 100,4096] [--modes {}]",
                    Mode::ALL.map(Mode::name).join(",")
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    uring_report()?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    println!(
        "dir {} ; {secs} s per run, {repeat} repeats (mode order rotated each repeat); loadavg at start: {}",
        dir.display(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("| record | committers | mode | commits/s | p50 us | p99 us | CPU us/commit | commits/sync | other util (min-max) |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---|");
    for &size in &sizes {
        for &t in &threads {
            let mut cells: Vec<Vec<Cell>> = vec![Vec::new(); modes.len()];
            for r in 0..repeat {
                for k in 0..modes.len() {
                    let i = (k + r) % modes.len();
                    let c = run(&dir, modes[i], t, size, secs)?;
                    eprintln!("  {size} B x{t} {} run {r}: {c:?}", modes[i].name());
                    cells[i].push(c);
                }
            }
            for (i, m) in modes.iter().enumerate() {
                let cs = &cells[i];
                let med = |f: fn(&Cell) -> f64| median(cs.iter().map(f).collect());
                let ou: Vec<f64> = cs.iter().map(|c| c.other_util).collect();
                println!(
                    "| {size} B | {t} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2}-{:.2} |",
                    m.name(),
                    med(|c| c.ops),
                    med(|c| c.p50_us),
                    med(|c| c.p99_us),
                    med(|c| c.cpu_us),
                    med(|c| c.per_sync),
                    ou.iter().copied().fold(f64::INFINITY, f64::min),
                    ou.iter().copied().fold(0.0, f64::max),
                );
            }
        }
    }
    println!(
        "loadavg at end: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    Ok(())
}
