"""Application rootfs for QEMU guests: the rootfs directory appended to the initramfs.

A kvm or microvm guest whose spec has "rootfs" (a directory, e.g. an imported OCI image)
boots its kernel with ``ROOT/guests/<id>/initrd.img``: the spec's initrd (the tiny
busybox initramfs), zero padding, then an uncompressed "newc" cpio archive of the rootfs
under ``/ec-root`` with the command to run in ``/ec-root/.edgecloud/`` (``argv``, ``env``
and ``workdir``, one item a line). Linux unpacks concatenated initramfs archives in turn;
the command line word ``ec.app=/ec-root`` makes the tiny /init run the command there
(chrooted, see images/guest_files.py) instead of its own busybox init.

Why an initramfs and not an ext4 disk: no mkfs, no block device or filesystem to set up
in the guest, and nothing left to clean but one file; the price is that the whole rootfs
is loaded into the guest's memory, which suits small single-purpose images.
The archive is not compressed: TCG decompresses slowly, and the file stays on the host.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import IO, Any

from edgecloud.node.protocol import bad

APP_ROOT = "ec-root"
CMDLINE_WORD = f"ec.app=/{APP_ROOT}"
INITRD = "initrd.img"  # in the guest directory
_TRAILER = "TRAILER!!!"
_CHUNK = 1 << 20


class _Newc:
    """Write a newc cpio archive to a file, entry by entry."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.ino = 1

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def entry(
        self, name: str, info: os.stat_result | None, mode: int, size: int = 0, rdev: int = 0
    ) -> None:
        """Write an entry's header and name; its data (size bytes) must follow."""
        uid, gid, mtime = (info.st_uid, info.st_gid, int(info.st_mtime)) if info else (0, 0, 0)
        encoded = name.encode("utf-8", "surrogateescape") + b"\0"
        fields = (
            self.ino, mode, uid, gid, 1, mtime, size, 0, 0,
            os.major(rdev), os.minor(rdev), len(encoded), 0,
        )  # fmt: skip
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % value for value in fields) + encoded)
        self._pad()

    def data(self, data: bytes) -> None:
        """Write an entry's data."""
        self.out.write(data)
        self._pad()

    def file(self, name: str, path: Path, info: os.stat_result) -> None:
        """Write a regular file entry and its content."""
        self.entry(name, info, info.st_mode, info.st_size)
        left = info.st_size
        with path.open("rb") as source:
            while left > 0 and (chunk := source.read(min(left, _CHUNK))):
                self.out.write(chunk)
                left -= len(chunk)
        self.out.write(b"\0" * left)  # a file that shrank meanwhile keeps its announced size
        self._pad()

    def trailer(self) -> None:
        """End the archive."""
        self.entry(_TRAILER, None, 0)


def _add_tree(archive: _Newc, source: Path) -> None:
    """Add `source` as /ec-root: directories first, then what they hold."""
    archive.entry(APP_ROOT, os.lstat(source), stat.S_IFDIR | 0o755)
    for top, dirnames, filenames in os.walk(source):
        dirnames.sort()
        relative = os.path.relpath(top, source)
        base = APP_ROOT if relative == "." else f"{APP_ROOT}/{relative}"
        for name in sorted(dirnames + filenames):
            path = Path(top, name)
            info = os.lstat(path)
            mode = info.st_mode
            if stat.S_ISREG(mode):
                archive.file(f"{base}/{name}", path, info)
            elif stat.S_ISLNK(mode):
                target = os.fsencode(os.readlink(path))
                archive.entry(f"{base}/{name}", info, mode, len(target))
                archive.data(target)
            elif stat.S_ISDIR(mode):
                archive.entry(f"{base}/{name}", info, mode)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                archive.entry(f"{base}/{name}", info, mode, rdev=info.st_rdev)
            # sockets belong to a running system, not to an image


def _lines(items: list[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode("utf-8", "surrogateescape")


def _add_command(archive: _Newc, spec: dict[str, Any]) -> None:
    argv = spec.get("init") or ["/sbin/init"]
    if "=" in argv[0]:
        raise bad("the program to run cannot have '=' in its name")
    files = {
        "argv": _lines(argv),
        "env": _lines(spec.get("env") or []),
        "workdir": _lines([spec.get("workdir") or "/"]),
    }
    archive.entry(f"{APP_ROOT}/.edgecloud", None, stat.S_IFDIR | 0o755)
    for name, data in files.items():
        archive.entry(f"{APP_ROOT}/.edgecloud/{name}", None, stat.S_IFREG | 0o644, len(data))
        archive.data(data)


def build_initrd(guest_dir: Path, spec: dict[str, Any]) -> Path:
    """Write the guest's initrd: the spec's initrd, then the rootfs and its command."""
    rootfs, base = Path(spec["rootfs"]), Path(spec["initrd"])
    if not rootfs.is_dir():
        raise bad(f"rootfs {rootfs} is not a directory")
    target = guest_dir / INITRD
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        with base.open("rb") as first:
            shutil.copyfileobj(first, out, _CHUNK)
        out.write(b"\0" * (-out.tell() % 512))  # each archive starts 4-byte aligned
        archive = _Newc(out)
        _add_tree(archive, rootfs)
        _add_command(archive, spec)
        archive.trailer()
        out.write(b"\0" * (-out.tell() % 512))
    partial.replace(target)
    return target


def with_app(guest_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Return a parsed spec that boots the app initrd (built now) with ``ec.app=``.

    The spec's own initrd stays as "base_initrd"; "initrd" becomes the guest's file.
    """
    guest_dir.mkdir(parents=True, exist_ok=True)
    built = build_initrd(guest_dir, spec)
    words = (spec.get("cmdline") or "").split()
    if CMDLINE_WORD not in words:
        words.append(CMDLINE_WORD)
    return {**spec, "base_initrd": spec["initrd"], "initrd": str(built), "cmdline": " ".join(words)}
