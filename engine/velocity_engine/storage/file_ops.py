"""The file-system calls that durability depends on, in one injectable object.

Every create, write, sync, rename, unlink, truncate, mkdir and directory sync
of the storage engine's files (WAL segments, SSTables, manifests, CURRENT,
snapshot files, the restore marker) goes through a FileOps. Production uses
the defaults (plain os calls). Tests swap in failing calls (full disk, fsync
errors) or a power-loss simulator that, like LevelDB's fault-injection
environment, keeps only what was synced: file contents as of their last
fsync/fdatasync, directory entries as of the directory's last fsync
(tests/unit/storage/power_loss.py). Anything that bypassed this object would
escape that simulation, so storage code must not call os/pathlib for these.

Reads (mmap of tables, replay of the log, listing a directory) do not go
through it: they cannot lose data.

Durability rules the helpers encode (POSIX, ext4/xfs behaviour):
- a new file's data is durable after fsync of the file; its *name* only after
  fsync of the directory holding it;
- a rename or unlink is durable only after fsync of the directory;
- a new directory exists after a crash only once its parent was fsync'ed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import fsutil

# Modes: 0600 files, 0700 directories, set again after creation so the umask
# cannot change them (fsutil.FILE_MODE / DIR_MODE, docs/security.md).


def _create(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, fsutil.FILE_MODE)
    os.fchmod(fd, fsutil.FILE_MODE)
    return fd


def _open_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, fsutil.FILE_MODE)
    os.fchmod(fd, fsutil.FILE_MODE)  # also narrows a log segment an older version created 0644
    os.lseek(fd, 0, os.SEEK_END)
    return fd


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _mkdir(path: Path) -> None:
    os.mkdir(path, fsutil.DIR_MODE)
    os.chmod(path, fsutil.DIR_MODE)


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@dataclass
class FileOps:
    """The calls; each field may be replaced. Helpers below combine them."""

    write: Callable[[int, bytes | memoryview], int] = os.write
    fdatasync: Callable[[int], None] = os.fdatasync
    fsync: Callable[[int], None] = os.fsync
    free_bytes: Callable[[Path], int] = _free_bytes
    create: Callable[[Path], int] = _create  # truncating; returns a write-only fd
    open_append: Callable[[Path], int] = _open_append  # creating if missing; fd positioned at the end
    truncate: Callable[[int, int], None] = os.ftruncate
    replace: Callable[[Path, Path], None] = os.replace
    unlink: Callable[[Path], None] = _unlink  # a missing file is not an error
    mkdir: Callable[[Path], None] = _mkdir  # one level; the parent must exist
    fsync_dir: Callable[[Path], None] = fsutil.fsync_dir

    def write_all(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = self.write(fd, view)
            view = view[n:]

    def make_dirs(self, path: Path) -> None:
        """mkdir -p, fsync'ing each parent that gained an entry (so the directory survives a crash)."""
        if path.is_dir():
            return
        self.make_dirs(path.parent)
        try:
            self.mkdir(path)
        except FileExistsError:
            return
        self.fsync_dir(path.parent)

    def publish(self, path: Path, data: bytes) -> None:
        """Replace path by data crash-atomically: write a temp file, fsync, rename, fsync the directory.

        After a crash a reader finds the old content or the complete new one.
        The temp name starts with "." so start-up can recognise a leftover.
        """
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        fd = self.create(tmp)
        try:
            self.write_all(fd, data)
            self.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.unlink(tmp)
            raise
        os.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(path.parent)

    def truncate_file(self, path: Path, size: int) -> None:
        """Cut path to size, durably (the size change is synced before returning)."""
        fd = self.open_append(path)
        try:
            self.truncate(fd, size)
            self.fsync(fd)
        finally:
            os.close(fd)
