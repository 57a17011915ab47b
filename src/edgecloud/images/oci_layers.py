"""Applying image layers (tar archives) to a rootfs directory, safely.

Every entry's path is checked and then resolved *inside* the rootfs: an absolute path or a
``..`` in an entry's name is refused, and a symlink met on the way is followed as if the
rootfs were ``/`` (an absolute target starts again at the rootfs, ``..`` stops at it), so
nothing is ever written outside the rootfs whatever the links of earlier layers say. The
entry's own last component is never followed: an existing entry is replaced.

OCI whiteouts: ``.wh.NAME`` deletes NAME of the layers below; ``.wh..wh..opq`` empties its
directory of what the layers below put there (entries of the same layer stay). Modes,
owners (when running as root), times, symlinks and hard links are kept; device nodes are
made only when running as root (skipped otherwise); extended attributes are not kept.
Directory modes and times are applied once every layer is in (see `LayerTree.finish`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINKS = 40  # symlinks followed while resolving one path, like the kernel's limit
CHUNK = 1 << 20


class LayerError(ValueError):
    """A layer cannot be applied: a bad path, an unreadable archive, a conflict."""


def clean_name(name: str) -> str:
    """Return an archive path as a relative path ("" for the root); refuse escapes."""
    if name.startswith("/"):
        raise LayerError(f"layer entry {name!r}: an absolute path is refused")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer entry {name!r}: a '..' in the path is refused")
    if any("\0" in part for part in parts):
        raise LayerError(f"layer entry {name!r}: a NUL in the path is refused")
    return "/".join(parts)


def resolve(root: Path, relative: str) -> Path:
    """Return where `relative` is inside `root`, following symlinks as if root were "/".

    Every component is followed, the last one too: call it for a parent directory.
    """
    todo = [part for part in relative.split("/") if part]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        current = root.joinpath(*done, part)
        if current.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise LayerError(f"{relative!r}: too many levels of symbolic links")
            target = os.readlink(current)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return root.joinpath(*done)


def remove(path: Path) -> None:
    """Delete whatever is at `path` (a directory with its content; a link, not its target)."""
    if path.is_symlink() or not path.is_dir():
        if os.path.lexists(path):
            path.unlink()
    else:
        shutil.rmtree(path)


@dataclass
class LayerTree:
    """A rootfs being built from layers, lowest first."""

    root: Path
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    skipped: list[str] = field(default_factory=list)  # device nodes not made (not root)
    _dirs: dict[Path, tarfile.TarInfo] = field(default_factory=dict)

    def apply(self, layer: IO[bytes]) -> None:
        """Apply one layer (a tar stream: plain, gzip, bzip2 or xz)."""
        created: set[Path] = set()
        try:
            with tarfile.open(fileobj=layer, mode="r|*") as archive:
                for member in archive:
                    self._entry(archive, member, created)
        except tarfile.TarError as exc:
            raise LayerError(f"not a readable tar archive: {exc}") from exc

    def finish(self) -> None:
        """Give directories their modes and times (deepest first), once every layer is in."""
        for path, member in sorted(self._dirs.items(), key=lambda i: -len(i[0].parts)):
            if path.is_symlink() or not path.is_dir():
                continue  # replaced or deleted by a later layer
            os.chmod(path, stat.S_IMODE(member.mode))
            os.utime(path, (member.mtime, member.mtime))
        self.root.chmod(0o755)  # searchable by the users QEMU and LXC run as

    def _parent(self, relative: str) -> Path:
        """Return the resolved parent directory of an entry, made when missing."""
        parent = resolve(self.root, relative.rpartition("/")[0])
        try:
            parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise LayerError(f"{relative!r}: a parent is not a directory") from exc
        return parent

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo, created: set[Path]) -> None:
        relative = clean_name(member.name)
        if not relative:
            return  # the root itself ("./"): it keeps its own mode
        base = relative.rpartition("/")[2]
        parent = self._parent(relative)
        if base == OPAQUE:
            for child in list(parent.iterdir()):
                if child not in created:
                    remove(child)
            return
        if base.startswith(WHITEOUT):
            hidden = base[len(WHITEOUT) :]
            if hidden in ("", ".", ".."):
                raise LayerError(f"layer entry {member.name!r}: not a valid whiteout")
            remove(parent / hidden)
            return
        path = parent / base
        created.update([path, *path.parents])
        if member.isdir():
            if path.is_symlink() or not path.is_dir():
                remove(path)
                path.mkdir(mode=0o700)
            self._own(path, member)
            self._dirs[path] = member
            return
        remove(path)
        if member.isreg():
            self._write(archive, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self._link(member, path)
        elif member.isfifo():
            os.mkfifo(path)
        elif member.ischr() or member.isblk():
            if not self.as_root:
                self.skipped.append(relative)
                return
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            return  # an unknown type: nothing to make
        self._own(path, member)
        if not member.issym() and not member.islnk():
            os.chmod(path, stat.S_IMODE(member.mode))  # after chown, which drops setuid
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def _write(self, archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
        source = archive.extractfile(member)
        if source is None:
            raise LayerError(f"{member.name!r}: no data in the archive")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with source, os.fdopen(os.open(path, flags, 0o600), "wb") as target:
            while chunk := source.read(CHUNK):
                target.write(chunk)

    def _link(self, member: tarfile.TarInfo, path: Path) -> None:
        relative = clean_name(member.linkname)
        if not relative:
            raise LayerError(f"{member.name!r}: a hard link to the root is refused")
        target = resolve(self.root, relative.rpartition("/")[0]) / relative.rpartition("/")[2]
        if not os.path.lexists(target) or (target.is_dir() and not target.is_symlink()):
            raise LayerError(f"{member.name!r}: hard link to a missing file {member.linkname!r}")
        os.link(target, path, follow_symlinks=False)

    def _own(self, path: Path, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.lchown(path, member.uid, member.gid)


def tree_size(root: Path) -> int:
    """Return the bytes of a tree's regular files (hard links counted once) and symlinks."""
    seen: set[int] = set()
    total = 0
    for top, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            info = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(info.st_mode) and info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
            elif stat.S_ISLNK(info.st_mode):
                total += info.st_size
    return total
