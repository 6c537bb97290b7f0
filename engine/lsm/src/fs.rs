//! Every file operation the engine makes, behind one injectable trait.
//!
//! Production uses [`RealFs`] (std::fs and two libc calls). Tests swap in
//! [`crate::testing::SimFs`], an in-memory file system that can fail a write or
//! a sync, tear a write, run out of space, and cut the power (keeping only what
//! was synced, like LevelDB's fault-injection environment). Anything that
//! bypassed this trait would escape that simulation, so engine code must not
//! call `std::fs` directly.
//!
//! Durability rules the engine relies on (POSIX, ext4/xfs):
//! - a file's data is durable after `sync_data`/`sync_all` of the file; its *name*
//!   only after `sync_dir` of the directory holding it;
//! - a rename or removal is durable only after `sync_dir` of the directory;
//! - a new directory exists after a crash only once its parent was synced.
//!
//! Modes: files 0600, directories 0700, set again after creation so the umask
//! cannot widen them (docs/security.md, "Files").

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Mode of every file the engine creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the engine creates.
pub const DIR_MODE: u32 = 0o700;

/// A file opened for appending. Methods take `&self`: the commit path appends
/// while the sync thread syncs the same file.
pub trait WritableFile: Send + Sync {
    /// Append all of `data` (an error may leave a prefix of it written).
    fn append(&self, data: &[u8]) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync.
    fn sync_all(&self) -> io::Result<()>;
    /// Cut the file to `len` bytes (appends continue at the new end).
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Current size.
    fn size(&self) -> io::Result<u64>;
}

/// A file opened for positional reads.
pub trait ReadableFile: Send + Sync {
    /// Fill `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Size when opened.
    fn size(&self) -> u64;
}

/// The file system calls durability depends on. See the module docs for the rules.
pub trait FileSystem: Send + Sync {
    /// Create (truncating) a file for appending, mode 0600.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>>;
    /// Open for appending, creating it if missing (mode 0600).
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>>;
    /// Open for reading.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>>;
    /// Rename, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Create one directory level, mode 0700 (the parent must exist).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// fsync a directory (makes creations, renames and removals in it durable).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Names in a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Bytes available to this process on the volume holding `path`.
    fn free_bytes(&self, path: &Path) -> io::Result<u64>;
    /// A second name for a file (checkpoints); may fail with `Unsupported`.
    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()>;

    /// Take an exclusive lock on `path` (created if missing) for as long as the returned
    /// guard lives; `WouldBlock` if another holder has it. The default does nothing.
    fn lock_file(&self, _path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        Ok(Box::new(()))
    }

    /// Read a whole file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open_read(path)?;
        let mut buf = vec![0u8; f.size() as usize];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealWritable(File);
struct RealReadable(File, u64);

impl WritableFile for RealWritable {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        (&self.0).write_all(data)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl ReadableFile for RealReadable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.1
    }
}

fn open_writable(path: &Path, truncate: bool) -> io::Result<Arc<dyn WritableFile>> {
    let mut o = OpenOptions::new();
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    let f = o.create(true).mode(FILE_MODE).open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(Arc::new(RealWritable(f)))
}

impl FileSystem for RealFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        open_writable(path, true)
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        open_writable(path, false)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        let f = File::open(path)?;
        let size = f.metadata()?.len();
        Ok(Arc::new(RealReadable(f, size)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
        fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(path)? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    #[allow(unsafe_code)]
    fn free_bytes(&self, path: &Path) -> io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `c` is a valid NUL-terminated string and `st` points to writable memory
        // of the size statvfs(3) fills; we read it only after the call reported success.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it initialised the whole struct.
        let st = unsafe { st.assume_init() };
        #[allow(clippy::unnecessary_cast)] // c_ulong is not u64 on every target
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        fs::hard_link(src, dst)
    }
    #[allow(unsafe_code)]
    fn lock_file(&self, path: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        use std::os::fd::AsRawFd;
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)?;
        // SAFETY: `f` is an open file, so its descriptor is valid for the duration of the
        // call; flock(2) takes no pointers. The lock lives as long as the descriptor,
        // which the returned guard owns.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Box::new(f))
    }
}

/// `mkdir -p`, syncing each parent that gained an entry (so the directory survives a crash).
pub fn make_dirs(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    if fs.is_dir(path) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            make_dirs(fs, parent)?;
        }
    }
    match fs.create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fs.sync_dir(p),
        _ => Ok(()),
    }
}

/// Replace `path` by `data` crash-atomically: write a temp file, fsync, rename, fsync the directory.
///
/// After a crash a reader finds the old content or the complete new one. The temp
/// name starts with "." so start-up recognises a leftover.
pub fn publish(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let f = fs.create(&tmp)?;
    let written = f.append(data).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    fs.rename(&tmp, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir)
}

/// Remove a file; a missing one is not an error.
pub fn remove_if_exists(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
