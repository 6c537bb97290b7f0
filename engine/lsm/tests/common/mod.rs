//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use velocity_lsm::testing::SimFs;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "vlsm-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
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

pub const SIM_ROOT: &str = "/sim";

/// Options on a simulated file system, storage dir /sim/data/storage.
pub fn sim_opts(fs: &SimFs) -> Options {
    let mut o = Options::new(Path::new(SIM_ROOT).join("data/storage"));
    o.fs = Arc::new(fs.clone());
    o.fsync = FsyncPolicy::Always;
    o.memtable_bytes = 4096;
    o.compaction_rate_bytes = 0;
    o
}

pub fn put(k: &str, v: &str) -> Mutation {
    Mutation::put(
        Bytes::copy_from_slice(k.as_bytes()),
        Record::new(1, Bytes::copy_from_slice(v.as_bytes())),
    )
}

pub fn del(k: &str) -> Mutation {
    Mutation::delete(Bytes::copy_from_slice(k.as_bytes()))
}

pub fn get_str(db: &Db, k: &str) -> Option<String> {
    db.get(k.as_bytes())
        .unwrap()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
}

/// Every live (key, value) as strings.
pub fn dump(db: &Db) -> Vec<(String, String)> {
    db.scan_from(b"", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, r)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&r.value).into_owned(),
            )
        })
        .collect()
}

/// Run a future to completion on this thread (no runtime needed).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}
