"""Copying a container's rootfs with its owners shifted into the container's id range.

An unprivileged container's root is host uid `shift` (e.g. 100000): every file keeps its
mode, times, symlinks, hard links and device nodes, and owner `uid` becomes
`shift + uid`. Ids at or past the range's size become the range's `nobody` (65534).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

RANGE = 65536
NOBODY = 65534


def shifted(owner: int, shift: int) -> int:
    """Return the host id an id of the source tree gets."""
    if shift == 0:
        return owner
    return shift + (owner if owner < RANGE else NOBODY)


def _copy_entry(source: Path, target: Path, shift: int, links: dict[tuple[int, int], Path]) -> bool:
    """Copy one entry (not a directory's content); return whether it is a directory."""
    info = os.lstat(source)
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)
    elif stat.S_ISREG(mode):
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in links:
            os.link(links[key], target)
            return False
        shutil.copyfile(source, target, follow_symlinks=False)
        links[key] = target
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        os.mknod(target, mode, info.st_rdev)
    else:
        return False  # sockets belong to a running system, not to an image
    os.lchown(target, shifted(info.st_uid, shift), shifted(info.st_gid, shift))
    if not stat.S_ISLNK(mode):
        os.chmod(target, stat.S_IMODE(mode))  # after chown, which clears setuid bits
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
    return stat.S_ISDIR(mode)


def copy_tree(source: Path, target: Path, shift: int) -> None:
    """Copy `source` to the new directory `target`, shifting owners by `shift`."""
    links: dict[tuple[int, int], Path] = {}
    if not source.is_dir():
        raise NotADirectoryError(f"{source} is not a directory")
    _copy_entry(source, target, shift, links)
    directories = [(source, target)]
    for top, dirnames, filenames in os.walk(source):
        base = target / os.path.relpath(top, source)
        for name in sorted(dirnames + filenames):
            if _copy_entry(Path(top) / name, base / name, shift, links):
                directories.append((Path(top) / name, base / name))
    for src, dst in reversed(directories):  # adding entries changed their mtimes
        info = os.lstat(src)
        os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
