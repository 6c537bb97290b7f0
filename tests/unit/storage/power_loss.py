"""A power-loss simulator for the storage engine's FileOps (LevelDB's fault-injection idea).

It wraps the real calls on a real directory tree and keeps a model of what
a power cut would leave on disk:

- a file's durable content is what it held at its last fsync/fdatasync
  (never synced: empty);
- a directory's durable entries are what it listed at its last fsync
  (creates, renames and unlinks since then are undone by a cut);
- a new directory exists after a cut only if its parent was fsync'ed after it.

`cut_at=N` makes the N-th call (0-based) raise PowerCut before doing
anything, and every later call too, so the code under test stops touching
the disk at that instant. `restore_after_cut()` then rewrites the tree as the
model says. Given an rng it is more adversarial, as a real disk may be: each
file keeps a random prefix of its unsynced appended bytes, and each directory
entry changed since the directory's last fsync (created, replaced, unlinked)
independently ends up in its old or its new state, so directory operations
are not assumed to reach the disk in the order they were made. A file or directory created without
going through the FileOps is reported by `restore_after_cut` as an error:
that is a hole in the storage engine's crash safety.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from velocity_engine.storage.file_ops import FileOps


class PowerCut(BaseException):
    """Raised by every file operation from the cut on; BaseException so no handler swallows it."""


class BypassError(AssertionError):
    """A file appeared that the FileOps never created: it escaped the simulation."""


@dataclass
class _Node:
    is_dir: bool
    durable: bytes = b""  # files: content at the last sync
    entries: dict[str, int] = field(default_factory=dict)  # dirs: name -> node id at the last fsync


class PowerLossSim:
    """Build it on an existing root (taken as fully durable), use `.ops`, cut, restore."""

    def __init__(self, root: Path, cut_at: int | None = None) -> None:
        self.root = root
        self.cut_at = cut_at
        self.calls = 0
        self.dead = False
        self.log: list[tuple[str, str]] = []  # (call, file name) of every call made
        self._nodes: dict[int, _Node] = {}
        self._ids: dict[Path, int] = {}  # live path -> node id
        self._fds: dict[int, int] = {}  # open fd -> node id
        self._adopt(root)
        self.ops = FileOps(
            write=self._write, fdatasync=self._sync, fsync=self._sync, create=self._create,
            open_append=self._open_append, truncate=self._truncate, replace=self._replace,
            unlink=self._unlink, mkdir=self._mkdir, fsync_dir=self._fsync_dir,
            free_bytes=lambda _p: 1 << 40,
        )

    # -- model -------------------------------------------------------------------

    def _new(self, path: Path, is_dir: bool) -> int:
        nid = len(self._nodes) + 1
        self._nodes[nid] = _Node(is_dir)
        self._ids[path] = nid
        return nid

    def _adopt(self, path: Path) -> None:
        nid = self._new(path, path.is_dir())
        node = self._nodes[nid]
        if node.is_dir:
            for child in sorted(path.iterdir()):
                self._adopt(child)
                node.entries[child.name] = self._ids[child]
        else:
            node.durable = path.read_bytes()

    def _tick(self, call: str, path: Path | None) -> None:
        if self.dead:
            raise PowerCut(f"after the cut: {call}")
        if self.cut_at is not None and self.calls == self.cut_at:
            self.dead = True
            raise PowerCut(f"cut at call {self.calls}: {call} {path.name if path else ''}")
        self.calls += 1
        self.log.append((call, path.name if path is not None else ""))

    def _fd_path(self, fd: int) -> Path | None:
        nid = self._fds.get(fd)
        return next((p for p, i in self._ids.items() if i == nid), None)

    # -- the calls -----------------------------------------------------------------

    def _create(self, path: Path) -> int:
        self._tick("create", path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._fds[fd] = self._ids[path] if path in self._ids else self._new(path, False)
        return fd

    def _open_append(self, path: Path) -> int:
        self._tick("open_append", path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.lseek(fd, 0, os.SEEK_END)
        self._fds[fd] = self._ids[path] if path in self._ids else self._new(path, False)
        return fd

    def _write(self, fd: int, data: bytes | memoryview) -> int:
        self._tick("write", self._fd_path(fd))
        return os.write(fd, data)

    def _truncate(self, fd: int, size: int) -> None:
        self._tick("truncate", self._fd_path(fd))
        os.ftruncate(fd, size)

    def _sync(self, fd: int) -> None:
        self._tick("sync", self._fd_path(fd))
        # Read through /proc: the fd is write-only, and the file may be unlinked already.
        rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        try:
            size = os.fstat(rfd).st_size
            self._nodes[self._fds[fd]].durable = os.pread(rfd, size, 0)
        finally:
            os.close(rfd)

    def _replace(self, src: Path, dst: Path) -> None:
        self._tick("replace", dst)
        os.replace(src, dst)
        self._ids[dst] = self._ids.pop(src)

    def _unlink(self, path: Path) -> None:
        self._tick("unlink", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        self._ids.pop(path, None)

    def _mkdir(self, path: Path) -> None:
        self._tick("mkdir", path)
        os.mkdir(path, 0o755)
        self._new(path, True)

    def _fsync_dir(self, path: Path) -> None:
        self._tick("fsync_dir", path)
        node = self._nodes[self._ids[path]]
        entries = {}
        for child in path.iterdir():
            if child not in self._ids:
                raise BypassError(f"{child} was created without the FileOps")
            entries[child.name] = self._ids[child]
        node.entries = entries

    # -- the cut ---------------------------------------------------------------------

    def restore_after_cut(self, rng: random.Random | None = None) -> None:
        """Rewrite the tree to what survives the cut (rng: also keep random unsynced tails)."""
        self._check_no_bypass(self.root)
        live = {nid: p.read_bytes() for p, nid in self._ids.items() if p.is_file()}
        children: dict[int, dict[str, int]] = {}
        for p, nid in self._ids.items():
            if p != self.root:
                children.setdefault(self._ids[p.parent], {})[p.name] = nid
        for child in self.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        self._rebuild(self.root, self._ids[self.root], live, children, rng)

    def _check_no_bypass(self, path: Path) -> None:
        for child in path.iterdir():
            if child not in self._ids:
                raise BypassError(f"{child} was created without the FileOps")
            if child.is_dir():
                self._check_no_bypass(child)

    def _rebuild(
        self, path: Path, dir_id: int, live: dict[int, bytes], children: dict[int, dict[str, int]],
        rng: random.Random | None,
    ) -> None:
        durable = self._nodes[dir_id].entries
        now = children.get(dir_id, {})
        chosen: dict[str, int] = dict(durable)
        if rng is not None:  # each changed entry independently: as of the last fsync, or as now
            chosen = {}
            for name in sorted(set(durable) | set(now)):
                old, new = durable.get(name), now.get(name)
                pick = old if old == new else rng.choice([old, new])
                if pick is not None:
                    chosen[name] = pick
        for name, nid in sorted(chosen.items()):
            child = self._nodes[nid]
            target = path / name
            if child.is_dir:
                target.mkdir()
                self._rebuild(target, nid, live, children, rng)
                continue
            data = child.durable
            cur = live.get(nid)
            if rng is not None and cur is not None and cur.startswith(data) and len(cur) > len(data):
                data = cur[: len(data) + rng.randrange(len(cur) - len(data) + 1)]
            target.write_bytes(data)
