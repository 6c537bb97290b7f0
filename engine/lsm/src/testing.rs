//! Test support: [`SimFs`], an in-memory [`FileSystem`] with fault injection and power cuts.
//!
//! It keeps, per file, the content as of its last sync, and per directory the
//! entries as of its last directory sync, so [`SimFs::crash`] can build the
//! image a power cut leaves behind:
//! - [`CrashMode::SyncedOnly`]: files hold exactly their synced content, directories
//!   their synced entries (a new directory only if its parent was synced);
//! - [`CrashMode::Tails`]: files also keep a random prefix of their unsynced appends,
//!   and each directory entry changed since the last directory sync independently
//!   ends up old or new (directory operations may reach the disk in any order).
//!
//! Faults: [`SimFs::set_fault`] installs a hook that sees every mutating operation
//! ([`Op`]) and may fail it ([`Fault::Fail`]) or tear an append ([`Fault::Torn`]);
//! [`SimFs::power_off_after`] makes every operation from the n-th on fail (the moment
//! of the cut); [`SimFs::set_free_bytes`] simulates a full disk (an append that does
//! not fit writes what fits, then fails with `ENOSPC`). Used by this crate's tests and
//! available to the server's.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{FileSystem, ReadableFile, WritableFile};

/// The kind of a mutating file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// create (truncating) or open for append.
    Open,
    /// An append.
    Append,
    /// fdatasync / fsync of a file.
    Sync,
    /// ftruncate.
    Truncate,
    /// rename.
    Rename,
    /// unlink.
    Remove,
    /// mkdir.
    CreateDir,
    /// fsync of a directory.
    SyncDir,
    /// link.
    HardLink,
}

/// A mutating operation, as the fault hook sees it.
#[derive(Debug, Clone)]
pub struct Op {
    /// Sequence number of the operation (0-based, counting every mutating op).
    pub index: u64,
    /// What it is.
    pub kind: OpKind,
    /// The file or directory.
    pub path: PathBuf,
    /// Bytes, for appends.
    pub len: usize,
}

/// What the hook does to an operation.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Fail it with this errno (nothing happens).
    Fail(i32),
    /// For an append: write only the first `keep` bytes, then fail with `errno`.
    Torn {
        /// Bytes that reach the file.
        keep: usize,
        /// The error the caller sees.
        errno: i32,
    },
}

/// How [`SimFs::crash`] decides what survived.
#[derive(Debug, Clone, Copy)]
pub enum CrashMode {
    /// Only what was synced.
    SyncedOnly,
    /// Synced data plus random unsynced tails and a random mix of unsynced directory changes.
    Tails {
        /// Seed of the random choices.
        seed: u64,
    },
}

type Hook = Box<dyn FnMut(&Op) -> Option<Fault> + Send>;

struct FileData {
    data: Vec<u8>,
    synced_len: usize,
    /// Content as of the last sync when a truncation went below `synced_len` since.
    synced_snapshot: Option<Vec<u8>>,
}

impl FileData {
    fn synced(&self) -> &[u8] {
        self.synced_snapshot.as_deref().unwrap_or(&self.data[..self.synced_len])
    }
}

struct Inode {
    id: u64,
    data: Mutex<FileData>,
}

#[derive(Clone)]
enum Node {
    File(Arc<Inode>),
    Dir,
}

impl Node {
    fn same(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::File(a), Node::File(b)) => a.id == b.id,
            (Node::Dir, Node::Dir) => true,
            _ => false,
        }
    }
}

#[derive(Default, Clone)]
struct DirNode {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

struct State {
    roots: Vec<PathBuf>,
    dirs: HashMap<PathBuf, DirNode>,
    hook: Option<Hook>,
    ops: u64,
    power_off_at: Option<u64>,
    free: Option<u64>,
    next_inode: u64,
}

/// The simulated file system; cheap to clone (clones share state).
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Mutex<State>>,
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(|| err(libc::EINVAL))?.to_path_buf();
    let name = path
        .file_name()
        .ok_or_else(|| err(libc::EINVAL))?
        .to_string_lossy()
        .into_owned();
    Ok((parent, name))
}

impl SimFs {
    /// A file system holding the (durable, existing) directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> SimFs {
        let root = root.into();
        let mut dirs = HashMap::new();
        dirs.insert(root.clone(), DirNode::default());
        SimFs {
            shared: Arc::new(Mutex::new(State {
                roots: vec![root],
                dirs,
                hook: None,
                ops: 0,
                power_off_at: None,
                free: None,
                next_inode: 1,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Install a hook that may fail or tear mutating operations (replaces the previous one).
    pub fn set_fault(&self, hook: impl FnMut(&Op) -> Option<Fault> + Send + 'static) {
        self.lock().hook = Some(Box::new(hook));
    }

    /// Remove the fault hook.
    pub fn clear_fault(&self) {
        self.lock().hook = None;
    }

    /// Every mutating operation from the `n`-th (0-based, counted from the start) fails with EIO.
    pub fn power_off_after(&self, n: u64) {
        self.lock().power_off_at = Some(n);
    }

    /// Mutating operations so far.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// Bytes appends may still add in total (`None`: unlimited).
    pub fn set_free_bytes(&self, free: Option<u64>) {
        self.lock().free = free;
    }

    /// The content of a file as the process sees it now.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let (parent, name) = split(path).ok()?;
        match st.dirs.get(&parent)?.live.get(&name)? {
            Node::File(i) => Some(i.data.lock().unwrap_or_else(|p| p.into_inner()).data.clone()),
            Node::Dir => None,
        }
    }

    /// Replace a file's content (tests that damage files); counts as synced.
    pub fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let f = self.create(path)?;
        f.append(data)?;
        f.sync_all()?;
        let (parent, _) = split(path)?;
        self.sync_dir(&parent)
    }

    /// The image a power cut would leave now (a new, independent file system).
    pub fn crash(&self, mode: CrashMode) -> SimFs {
        let st = self.lock();
        let mut rng = match mode {
            CrashMode::SyncedOnly => None,
            CrashMode::Tails { seed } => Some(Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)),
        };
        let mut dirs = HashMap::new();
        let mut inodes: HashMap<u64, Arc<Inode>> = HashMap::new();
        let mut next_inode = st.next_inode;
        let mut todo: Vec<PathBuf> = st.roots.clone();
        while let Some(dir) = todo.pop() {
            let Some(node) = st.dirs.get(&dir) else { continue };
            let mut entries = BTreeMap::new();
            let names: std::collections::BTreeSet<&String> = node.live.keys().chain(node.durable.keys()).collect();
            for name in names {
                let live = node.live.get(name);
                let durable = node.durable.get(name);
                let unchanged = matches!((live, durable), (Some(l), Some(d)) if l.same(d));
                let take_live = !unchanged && rng.as_mut().is_some_and(|r| r.next() % 2 == 0);
                let chosen = if take_live { live } else { durable };
                let Some(chosen) = chosen else { continue };
                match chosen {
                    Node::Dir => {
                        entries.insert(name.clone(), Node::Dir);
                        todo.push(dir.join(name));
                    }
                    Node::File(inode) => {
                        let copy = inodes.entry(inode.id).or_insert_with(|| {
                            let fd = inode.data.lock().unwrap_or_else(|p| p.into_inner());
                            let mut data = fd.synced().to_vec();
                            if let Some(r) = rng.as_mut() {
                                if fd.synced_snapshot.is_none() && fd.data.len() > fd.synced_len {
                                    let extra = (r.next() % (fd.data.len() - fd.synced_len + 1) as u64) as usize;
                                    data.extend_from_slice(&fd.data[fd.synced_len..fd.synced_len + extra]);
                                }
                            }
                            next_inode += 1;
                            let len = data.len();
                            Arc::new(Inode {
                                id: next_inode,
                                data: Mutex::new(FileData {
                                    data,
                                    synced_len: len,
                                    synced_snapshot: None,
                                }),
                            })
                        });
                        entries.insert(name.clone(), Node::File(copy.clone()));
                    }
                }
            }
            dirs.insert(
                dir,
                DirNode {
                    live: entries.clone(),
                    durable: entries,
                },
            );
        }
        SimFs {
            shared: Arc::new(Mutex::new(State {
                roots: st.roots.clone(),
                dirs,
                hook: None,
                ops: 0,
                power_off_at: None,
                free: None,
                next_inode: next_inode + 1,
            })),
        }
    }

    /// Count the operation and apply power-off / the hook. `Ok(Some(keep))` tears an append.
    fn check(&self, st: &mut State, kind: OpKind, path: &Path, len: usize) -> io::Result<Option<(usize, i32)>> {
        let index = st.ops;
        st.ops += 1;
        if st.power_off_at.is_some_and(|n| index >= n) {
            return Err(err(libc::EIO));
        }
        if let Some(hook) = st.hook.as_mut() {
            let op = Op {
                index,
                kind,
                path: path.to_path_buf(),
                len,
            };
            match hook(&op) {
                None => {}
                Some(Fault::Fail(e)) => return Err(err(e)),
                Some(Fault::Torn { keep, errno }) => return Ok(Some((keep.min(len), errno))),
            }
        }
        Ok(None)
    }

    fn open(&self, path: &Path, truncate: bool) -> io::Result<Arc<dyn WritableFile>> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::Open, path, 0)?;
        let (parent, name) = split(path)?;
        let id = st.next_inode;
        let dir = st.dirs.get_mut(&parent).ok_or_else(|| err(libc::ENOENT))?;
        let inode = match dir.live.get(&name) {
            Some(Node::File(i)) => {
                if truncate {
                    let mut fd = i.data.lock().unwrap_or_else(|p| p.into_inner());
                    if fd.synced_snapshot.is_none() && fd.synced_len > 0 {
                        fd.synced_snapshot = Some(fd.data[..fd.synced_len].to_vec());
                    }
                    fd.data.clear();
                    fd.synced_len = 0;
                }
                i.clone()
            }
            Some(Node::Dir) => return Err(err(libc::EISDIR)),
            None => {
                let i = Arc::new(Inode {
                    id,
                    data: Mutex::new(FileData {
                        data: Vec::new(),
                        synced_len: 0,
                        synced_snapshot: None,
                    }),
                });
                dir.live.insert(name, Node::File(i.clone()));
                st.next_inode += 1;
                i
            }
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            inode,
            path: path.to_path_buf(),
        }))
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

struct SimFile {
    fs: SimFs,
    inode: Arc<Inode>,
    path: PathBuf,
}

struct SimReader {
    data: Vec<u8>,
}

impl WritableFile for SimFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let mut st = self.fs.lock();
        let torn = self.fs.check(&mut st, OpKind::Append, &self.path, data.len())?;
        let (mut keep, mut errno) = torn.unwrap_or((data.len(), 0));
        if let Some(free) = st.free {
            if (keep as u64) > free {
                keep = free as usize;
                errno = libc::ENOSPC;
            }
            st.free = Some(free - keep as u64);
        }
        self.inode
            .data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .data
            .extend_from_slice(&data[..keep]);
        if keep < data.len() || errno != 0 {
            return Err(err(if errno == 0 { libc::EIO } else { errno }));
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.lock();
        self.fs.check(&mut st, OpKind::Sync, &self.path, 0)?;
        let mut fd = self.inode.data.lock().unwrap_or_else(|p| p.into_inner());
        fd.synced_len = fd.data.len();
        fd.synced_snapshot = None;
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        self.fs.check(&mut st, OpKind::Truncate, &self.path, 0)?;
        let mut fd = self.inode.data.lock().unwrap_or_else(|p| p.into_inner());
        let len = len as usize;
        if len < fd.synced_len && fd.synced_snapshot.is_none() {
            fd.synced_snapshot = Some(fd.data[..fd.synced_len].to_vec());
            fd.synced_len = len;
        }
        fd.data.resize(len, 0);
        if fd.synced_len > len {
            fd.synced_len = len;
        }
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.inode.data.lock().unwrap_or_else(|p| p.into_inner()).data.len() as u64)
    }
}

impl ReadableFile for SimReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = offset as usize;
        match start.checked_add(buf.len()) {
            Some(end) if end <= self.data.len() => {
                buf.copy_from_slice(&self.data[start..end]);
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end")),
        }
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

impl FileSystem for SimFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        self.open(path, true)
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        self.open(path, false)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        // A snapshot of the content: the engine reads only files it no longer writes
        // (tables, closed segments) or the stable prefix of the live segment.
        let data = self.contents(path).ok_or_else(|| err(libc::ENOENT))?;
        Ok(Arc::new(SimReader { data }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::Rename, from, 0)?;
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        if !st.dirs.contains_key(&tp) {
            return Err(err(libc::ENOENT));
        }
        let node = st
            .dirs
            .get_mut(&fp)
            .and_then(|d| d.live.remove(&fname))
            .ok_or_else(|| err(libc::ENOENT))?;
        st.dirs
            .get_mut(&tp)
            .ok_or_else(|| err(libc::ENOENT))?
            .live
            .insert(tname, node);
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::Remove, path, 0)?;
        let (parent, name) = split(path)?;
        let dir = st.dirs.get_mut(&parent).ok_or_else(|| err(libc::ENOENT))?;
        match dir.live.get(&name) {
            Some(Node::File(_)) => {
                dir.live.remove(&name);
                Ok(())
            }
            Some(Node::Dir) => Err(err(libc::EISDIR)),
            None => Err(err(libc::ENOENT)),
        }
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::CreateDir, path, 0)?;
        let (parent, name) = split(path)?;
        let dir = st.dirs.get_mut(&parent).ok_or_else(|| err(libc::ENOENT))?;
        if dir.live.contains_key(&name) {
            return Err(err(libc::EEXIST));
        }
        dir.live.insert(name, Node::Dir);
        st.dirs.insert(path.to_path_buf(), DirNode::default());
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::SyncDir, path, 0)?;
        let dir = st.dirs.get_mut(path).ok_or_else(|| err(libc::ENOENT))?;
        dir.durable = dir.live.clone();
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let dir = st.dirs.get(path).ok_or_else(|| err(libc::ENOENT))?;
        Ok(dir.live.keys().cloned().collect())
    }
    fn is_dir(&self, path: &Path) -> bool {
        let st = self.lock();
        st.roots.iter().any(|r| r == path)
            || split(path)
                .ok()
                .and_then(|(p, n)| {
                    st.dirs
                        .get(&p)
                        .and_then(|d| d.live.get(&n))
                        .map(|n| matches!(n, Node::Dir))
                })
                .unwrap_or(false)
    }
    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.roots.iter().any(|r| r == path)
            || split(path)
                .ok()
                .and_then(|(p, n)| st.dirs.get(&p).map(|d| d.live.contains_key(&n)))
                .unwrap_or(false)
    }
    fn free_bytes(&self, _path: &Path) -> io::Result<u64> {
        Ok(self.lock().free.unwrap_or(u64::MAX / 2))
    }
    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.check(&mut st, OpKind::HardLink, dst, 0)?;
        let (sp, sname) = split(src)?;
        let (dp, dname) = split(dst)?;
        let node = st
            .dirs
            .get(&sp)
            .and_then(|d| d.live.get(&sname))
            .cloned()
            .ok_or_else(|| err(libc::ENOENT))?;
        let dir = st.dirs.get_mut(&dp).ok_or_else(|| err(libc::ENOENT))?;
        if dir.live.contains_key(&dname) {
            return Err(err(libc::EEXIST));
        }
        dir.live.insert(dname, node);
        Ok(())
    }
}
