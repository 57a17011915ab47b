"""Unpacking a rootfs tar archive so that nothing lands outside the target directory.

Entry by entry, without tarfile's extract (whose regular files are opened following
symlinks): a name that is absolute or has a ``..`` is refused, as is an entry whose
directory on disk is reached through anything but real directories, a hard link to
outside the tree, and a relative symlink that climbs out of it. An absolute symlink is
kept: a rootfs is full of them (``/etc/localtime``) and they mean the rootfs' own paths;
this code never follows one. Owners stay numeric (when run as root) and modes keep their
setuid bits, as a container's rootfs needs; device nodes are skipped (a container gets
its /dev from LXC).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path

from edgecloud.node.protocol import NodeError

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _refused(name: str, why: str) -> NodeError:
    return NodeError("failed", f"rootfs archive entry {name[:200]!r} {why}: refused")


def _parts(name: str, link: str | None = None) -> list[str]:
    """Return the path components of an entry name, or of its hard `link`'s target."""
    path = name if link is None else link
    what = "" if link is None else f"links to {link[:200]!r}, which "
    if path.startswith("/"):
        raise _refused(name, f"{what}is an absolute path")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refused(name, f"{what}has a '..' component")
    return parts


def _directory(dest: Path, parts: list[str], name: str, create: bool) -> Path:
    """Return dest/parts, checking (and with `create`, making) every step a real directory."""
    current = dest
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            if not create:
                raise _refused(name, f"needs {part!r}, which is not there") from None
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(mode):  # a symlink included: never followed
            raise _refused(name, f"goes through {part!r}, which is not a directory")
    return current


def _make_room(path: Path, name: str, is_dir: bool) -> bool:
    """Clear the way for an entry (a later entry of a name replaces an earlier one).

    Return whether a directory is there already (kept for a directory entry).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        if is_dir:
            return True
        raise _refused(name, "would replace a directory")
    os.unlink(path)
    return False


def _attributes(path: Path, member: tarfile.TarInfo, *, link: bool = False) -> None:
    if os.geteuid() == 0:
        os.lchown(path, member.uid, member.gid)
    if not link:
        os.chmod(path, stat.S_IMODE(member.mode))  # after chown, which clears setuid bits
    os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def _check_symlink(name: str, parts: list[str], target: str) -> None:
    if not target or "\0" in target:
        raise _refused(name, "is a symlink without a target")
    if target.startswith("/"):
        return  # the rootfs' own absolute path, resolved inside it by whoever uses it
    resolved = posixpath.normpath(posixpath.join("/".join(parts[:-1]) or ".", target))
    if resolved == ".." or resolved.startswith("../"):
        raise _refused(name, f"is a symlink to {target[:200]!r}, outside the tree")


def _regular(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    source = archive.extractfile(member)
    if source is None:
        raise _refused(member.name, "has no data")
    fd = os.open(path, _FILE_FLAGS, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def _entry(archive: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> bool:
    """Extract one non-directory entry; return whether it was (devices are skipped)."""
    name = member.name
    parts = _parts(name)
    if not parts:
        raise _refused(name, "is the root but not a directory")
    path = _directory(dest, parts[:-1], name, create=True) / parts[-1]
    if (
        member.ischr()
        or member.isblk()
        or not (member.isreg() or member.issym() or member.islnk() or member.isfifo())
    ):
        return False
    _make_room(path, name, is_dir=False)
    if member.isreg():
        _regular(archive, member, path)
    elif member.issym():
        _check_symlink(name, parts, member.linkname)
        os.symlink(member.linkname, path)
        _attributes(path, member, link=True)
        return True
    elif member.islnk():
        source_parts = _parts(name, member.linkname)
        if not source_parts:
            raise _refused(name, "is a hard link to the root")
        source = _directory(dest, source_parts[:-1], name, create=False) / source_parts[-1]
        try:
            is_dir = stat.S_ISDIR(os.lstat(source).st_mode)
        except FileNotFoundError:
            is_dir = True
        if is_dir:
            raise _refused(name, f"is a hard link to {member.linkname[:200]!r}, not a file")
        os.link(source, path, follow_symlinks=False)
        return True
    else:
        os.mkfifo(path, 0o600)
    _attributes(path, member)
    return True


def unpack(tar_path: Path, dest: Path) -> int:
    """Unpack `tar_path` (any compression tarfile reads) into the existing directory `dest`.

    Return the number of entries skipped (device nodes and the like).
    """
    skipped = 0
    directories: list[tuple[Path, tarfile.TarInfo]] = []
    dest.chmod(0o755)
    try:
        with tarfile.open(tar_path, "r:*") as archive:
            for member in archive:
                if not member.isdir():
                    skipped += 0 if _entry(archive, member, dest) else 1
                    continue
                parts = _parts(member.name)
                path = _directory(dest, parts[:-1], member.name, create=True)
                if parts:
                    path = path / parts[-1]
                    if not _make_room(path, member.name, is_dir=True):
                        os.mkdir(path, 0o700)
                directories.append((path, member))
    except (tarfile.TarError, EOFError) as exc:
        raise NodeError("failed", f"the rootfs is not a readable tar archive: {exc}") from exc
    for path, member in reversed(directories):  # last: adding entries changed their mtimes
        _attributes(path, member)
    return skipped
