//! Real `velocity-engine` processes for the integration tests.
//!
//! The binary comes from `VELOCITY_ENGINE` (set by `make test-rust`); a test
//! fails loudly when it is missing. Ports are picked free by the OS; readiness
//! is polled on `/readyz`; every process is SIGKILLed when its handle drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use velocity_sdk::{Client, ClientBuilder};

pub fn engine_bin() -> PathBuf {
    let bin = std::env::var_os("VELOCITY_ENGINE").unwrap_or_else(|| {
        panic!("VELOCITY_ENGINE is not set: point it at the velocity-engine executable (make test-rust does)")
    });
    let bin = PathBuf::from(bin);
    assert!(bin.exists(), "VELOCITY_ENGINE={} does not exist", bin.display());
    bin
}

/// The Python interpreter of the venv the engine lives in (for cross-language tests).
pub fn python_bin() -> PathBuf {
    engine_bin().with_file_name("python")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh directory under the target dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        TempDir(base)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Engine {
    pub data_dir: PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    pub insecure: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Engine {
    pub fn new(dir: &Path, insecure: bool, args: &[String]) -> Engine {
        Engine {
            data_dir: dir.join("data"),
            port: free_port(),
            metrics_port: free_port(),
            insecure,
            args: args.to_vec(),
            env: Vec::new(),
            child: None,
            log: dir.join("engine-0.log"),
            starts: 0,
        }
    }

    /// A TLS engine with a generated token and CA, started and ready.
    pub fn tls(dir: &Path) -> Engine {
        let mut e = Engine::new(dir, false, &[]);
        e.start();
        e
    }

    /// A plaintext `--insecure` engine, started and ready.
    pub fn plaintext(dir: &Path) -> Engine {
        let mut e = Engine::new(dir, true, &[]);
        e.start();
        e
    }

    pub fn start(&mut self) {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        self.log = self.data_dir.with_file_name(format!("engine-{}.log", self.starts));
        self.starts += 1;
        let log = std::fs::File::create(&self.log).unwrap();
        let mut cmd = Command::new(engine_bin());
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--metrics-port")
            .arg(self.metrics_port.to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env_remove("VDB_TOKEN")
            .env_remove("VDB_CA");
        if self.insecure {
            cmd.arg("--insecure");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn velocity-engine"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("engine exited with {status}:\n{}", self.log());
            }
            if http_status(self.metrics_port, "/readyz") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("engine on port {} not ready in 30 s:\n{}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(10)); // polling interval, not a sync
        }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("vdb://127.0.0.1:{}", self.port)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("auth-token"))
            .expect("auth-token")
            .trim()
            .to_owned()
    }

    pub fn ca(&self) -> PathBuf {
        self.data_dir.join("tls").join("ca.crt")
    }

    /// A builder pointed at this engine with its token and CA (or plaintext).
    pub fn builder(&self) -> ClientBuilder {
        let b = Client::builder().endpoint(self.endpoint()).pool_size(2);
        if self.insecure {
            b.insecure()
        } else {
            b.token(self.token()).ca_file(self.ca())
        }
    }

    pub async fn client(&self) -> Client {
        self.builder()
            .build()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET http://127.0.0.1:port/path; the status code, or None if nobody answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = String::new();
    s.read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
