//! An opt-in file layer whose `sync_data` goes through io_uring (issue 13, "io_uring").
//!
//! [`UringSyncFs`] is [`RealFs`] in every call but one: a file opened for appending
//! (the WAL segments) makes its `sync_data` an io_uring `FSYNC(DATASYNC)` on a ring
//! of its own, submitted and waited for by the caller (the WAL's sync thread). The
//! commit path is unchanged (`write()` under the commit lock), so the ordering the
//! WAL relies on holds as it does with `RealFs`: a sync covers the appends whose
//! `write()` returned before it was submitted. A failed FSYNC completion is returned
//! as the same `io::Error` fdatasync would give, and the WAL fails stop on it.
//!
//! Not the default: docs/benchmarks.md ("Native storage") measured it against plain
//! fdatasync. ext4 has no non-blocking fsync, so io_uring hands each FSYNC to an
//! io-wq kernel worker; that costs CPU per commit and gave no consistent gain with
//! many committers. Choose it with `opts.fs = Arc::new(UringSyncFs::new()?)`.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use io_uring::{opcode, types, IoUring};

use crate::fs::{FileSystem, ReadableFile, RealFs, WritableFile};

/// [`RealFs`], with appendable files synced (`sync_data`) through io_uring.
#[derive(Debug, Clone, Copy)]
pub struct UringSyncFs {
    _probed: (),
}

impl UringSyncFs {
    /// Check that this kernel lets the process set up a ring (io_uring_disabled,
    /// seccomp and old kernels refuse it) and supports FSYNC; an error says which.
    pub fn new() -> io::Result<UringSyncFs> {
        let ring = IoUring::new(2).map_err(|e| io::Error::new(e.kind(), format!("io_uring_setup failed: {e}")))?;
        let mut probe = io_uring::Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring probe failed: {e}")))?;
        if !probe.is_supported(opcode::Fsync::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's io_uring has no FSYNC",
            ));
        }
        Ok(UringSyncFs { _probed: () })
    }
}

/// A `RealFs` file and the ring its syncs go through.
struct UringWritable {
    inner: Arc<dyn WritableFile>,
    fd: i32,
    /// Only the WAL's sync thread (or the commit path at rotation and close) syncs;
    /// the mutex makes the ring `Sync` and is never contended in practice.
    ring: Mutex<IoUring>,
    /// Keeps `fd` open as long as the ring may use it.
    _file: std::fs::File,
}

impl UringWritable {
    #[allow(unsafe_code)]
    fn fsync_datasync(&self) -> io::Result<()> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let sqe = opcode::Fsync::new(types::Fd(self.fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(1);
        // SAFETY: the entry points to no memory of ours; `fd` stays open while `self`
        // lives (`_file` holds it), and we wait for the completion before returning.
        unsafe { ring.submission().push(&sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        ring.submit_and_wait(1)?;
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| io::Error::other("io_uring returned no completion for FSYNC"))?;
        if cqe.result() < 0 {
            return Err(io::Error::from_raw_os_error(-cqe.result()));
        }
        Ok(())
    }
}

impl WritableFile for UringWritable {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fsync_datasync()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl FileSystem for UringSyncFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        RealFs.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        let inner = RealFs.open_append(path)?;
        // A second descriptor of the same file for the ring: fdatasync of either
        // flushes the file's data (it is per inode, not per descriptor).
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Arc::new(UringWritable {
            inner,
            fd: file.as_raw_fd(),
            ring: Mutex::new(IoUring::new(2)?),
            _file: file,
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        RealFs.open_read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        RealFs.list_dir(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        RealFs.is_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        RealFs.exists(path)
    }
    fn free_bytes(&self, path: &Path) -> io::Result<u64> {
        RealFs.free_bytes(path)
    }
    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        RealFs.hard_link(src, dst)
    }
    fn lock_file(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        RealFs.lock_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, FsyncPolicy, Mutation, Options, Record};

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vlsm-uring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commits_under_always_are_durable_and_replay() {
        let fs = UringSyncFs::new().expect("io_uring is available on the test machine");
        let dir = temp_dir("always");
        let mut o = Options::new(&dir);
        o.fsync = FsyncPolicy::Always;
        o.fs = Arc::new(fs);
        let db = Db::open(o.clone()).unwrap();
        for i in 0..50u32 {
            let c = db
                .commit(1, vec![Mutation::put(format!("k{i}"), Record::new(0, "v"))])
                .unwrap();
            c.wait().unwrap();
        }
        assert_eq!(db.durable_seq(), 50);
        assert!(db.stats().fsyncs >= 1);
        db.close().unwrap();
        o.fs = Arc::new(RealFs);
        let db = Db::open(o).unwrap();
        assert_eq!(db.len(), 50);
        assert_eq!(db.recovery().batches, 50);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_fsync_completion_is_an_error() {
        let dir = temp_dir("ebadf");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = std::fs::File::create(&path).unwrap();
        // A read-only descriptor is fine for fsync; -1 is not: the CQE carries -EBADF.
        let w = UringWritable {
            inner: RealFs.open_append(&path).unwrap(),
            fd: -1,
            ring: Mutex::new(IoUring::new(2).unwrap()),
            _file: file,
        };
        let err = w.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
