"""Publishing files safely: write a temp file, fsync it, rename, fsync the directory.

After a crash a reader sees either the old file or the complete new one,
never a torn mix.

Modes (docs/security.md, "Files"): everything the engine creates under its data
directory is private to its user: files 0600 (FILE_MODE), directories 0700
(DIR_MODE), whatever the umask (the mode is set again after creation, as a
umask can only narrow it). Certificates are the one exception (public, 0644,
inside the 0700 tls/ directory).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """mkdir -p with DIR_MODE for each directory created; existing ones are left as they are."""
    if path.is_dir():
        return
    make_private_dirs(path.parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return
    os.chmod(path, DIR_MODE)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.chmod(tmp, mode)  # umask may have narrowed it
    os.replace(tmp, path)
    fsync_dir(path.parent)
