"""Write cpio archives in the "newc" format the Linux kernel unpacks as an initramfs."""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass, field

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(size: int) -> bytes:
    return b"\0" * (-size % 4)


def _header(
    *,
    ino: int,
    mode: int,
    nlink: int,
    mtime: int,
    size: int,
    rdev: tuple[int, int],
    namesize: int,
) -> bytes:
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], namesize, 0)
    return MAGIC + b"".join(b"%08X" % value for value in fields)


@dataclass
class CpioWriter:
    """Collect entries (directories, files, symlinks, device nodes) owned by root.

    Entries are written in the order they are added; parents should come first.
    """

    mtime: int = 0
    _chunks: list[bytes] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)
    _next_ino: int = 1

    def _add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.strip("/")
        if not name or name in self._names:
            raise ValueError(f"cpio: empty or duplicate name {name!r}")
        self._names.add(name)
        self._entry(name, mode, data, rdev, nlink=2 if stat.S_ISDIR(mode) else 1)

    def _entry(
        self, name: str, mode: int, data: bytes, rdev: tuple[int, int], *, nlink: int
    ) -> None:
        encoded = name.encode() + b"\0"
        head = _header(
            ino=self._next_ino,
            mode=mode,
            nlink=nlink,
            mtime=self.mtime,
            size=len(data),
            rdev=rdev,
            namesize=len(encoded),
        )
        self._next_ino += 1
        self._chunks += [head, encoded, _pad4(len(head) + len(encoded)), data, _pad4(len(data))]

    def names(self) -> set[str]:
        """Return the names added so far (without leading '/')."""
        return set(self._names)

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        """Add a directory."""
        self._add(name, stat.S_IFDIR | perm)

    def add_parents(self, name: str) -> None:
        """Add the directories above name that are not in the archive yet."""
        parts = name.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in self._names:
                self.add_dir(parent)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        """Add a regular file with the given content."""
        self._add(name, stat.S_IFREG | perm, data)

    def add_symlink(self, name: str, target: str) -> None:
        """Add a symbolic link pointing at target."""
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        """Add a character device node (no mknod needed: the kernel creates it on unpack)."""
        self._add(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def getvalue(self) -> bytes:
        """Return the archive: every entry, then the trailer, padded to 512 bytes."""
        chunks = list(self._chunks)
        encoded = TRAILER.encode() + b"\0"
        head = _header(ino=0, mode=0, nlink=1, mtime=0, size=0, rdev=(0, 0), namesize=len(encoded))
        chunks += [head, encoded, _pad4(len(head) + len(encoded))]
        body = b"".join(chunks)
        return body + b"\0" * (-len(body) % 512)

    def gzipped(self, level: int = 6) -> bytes:
        """Return the archive gzip-compressed (reproducible: no name or time in the header)."""
        return gzip.compress(self.getvalue(), compresslevel=level, mtime=0)


def read_newc(archive: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """Parse a newc archive into (name, mode, data, (rdevmajor, rdevminor)), without trailer."""
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    pos = 0
    while True:
        if archive[pos : pos + 6] != MAGIC:
            raise ValueError(f"cpio: bad magic at offset {pos}")
        fields = [int(archive[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = pos + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        data = archive[data_start : data_start + size]
        pos = data_start + size + (-size % 4)
        if name == TRAILER:
            return entries
        entries.append((name, mode, data, rdev))
