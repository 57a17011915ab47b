"""The bytes of images in `fs` image datastores on the front-end.

An image of a datastore is one file, DIR/<image id>, where DIR is the datastore's
`BASE_PATH` attribute or $home/datastores/<datastore id>. A rootfs (format `dir`) is
kept as a tar file; hosts unpack it into their cache. Every image is stored with the
SHA-256 of its bytes: hosts cache it under that name and check it on arrival.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
# What registration accepts in `format`; "auto" detects one of the others from the bytes.
FORMATS = ("auto", "raw", "qcow2", "dir")


class ImageFileError(Exception):
    """The bytes cannot become an image; the message says why (it becomes last_error)."""


class NoSpace(ImageFileError):
    """The datastore has not enough free space."""


@dataclass(frozen=True)
class Stored:
    """An image's bytes once stored: where, their format, size and checksum."""

    path: Path
    format: str  # raw | qcow2 | dir (a tar)
    bytes: int
    virtual_mb: int
    checksum: str  # "sha256:<hex>"


def datastore_dir(home: Path, datastore_id: int, template: dict[str, object]) -> Path:
    """Return the directory of a datastore's images."""
    base = template.get("BASE_PATH")
    if isinstance(base, str) and base.startswith("/"):
        return Path(base)
    return home / "datastores" / str(datastore_id)


def detect(head: bytes) -> str:
    """Return the format of bytes starting with `head` (at least 512 bytes when there are).

    qcow2 and tar (a rootfs) are recognised by their magic; other disk formats QEMU knows
    are refused by name; anything else is raw (an ISO image is raw too).
    """
    if head[:4] == b"QFI\xfb":
        return "qcow2"
    if head[257:262] == b"ustar":
        return "dir"
    for magic, name in ((b"KDMV", "vmdk"), (b"conectix", "vpc"), (b"vhdxfile", "vhdx")):
        if head.startswith(magic):
            raise ImageFileError(f"format {name} is not supported (raw, qcow2, or a tar rootfs)")
    if head[64:68] == b"\x7f\x10\xda\xbe":
        raise ImageFileError("format vdi is not supported (raw, qcow2, or a tar rootfs)")
    return "raw"


def qcow2_virtual_size(head: bytes) -> int:
    """Return the virtual size a qcow2 header declares, in bytes."""
    if len(head) < 32:
        raise ImageFileError("the qcow2 header is truncated")
    return int(struct.unpack(">Q", head[24:32])[0])


def free_bytes(directory: Path) -> int:
    """Return the bytes free for an unprivileged writer on the directory's file system."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def _gunzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream given in chunks."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = inflater.decompress(chunk)
        if data:
            yield data
    rest = inflater.flush()
    if rest:
        yield rest


def file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Read a file object in chunks."""
    while chunk := stream.read(CHUNK):
        yield chunk


def store(
    chunks: Iterable[bytes],
    target: Path,
    *,
    declared: str = "auto",
    expected: str = "",
    limit_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Stored:
    """Write `chunks` to `target` (through target.part), checking what the bytes are.

    `declared` is the format asked for ("auto" takes what the bytes are); a gzip stream is
    decompressed first (a .tar.gz rootfs). `expected` is a checksum to match ("sha256:<hex>"
    or the bare hex) of the bytes as stored. Nothing is left behind on failure.
    """
    if declared not in FORMATS:
        raise ImageFileError(f"unknown format {declared!r} (one of {', '.join(FORMATS)})")
    want = _expected_hex(expected)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    stream = iter(chunks)
    first = next(stream, b"")
    if first[:2] == b"\x1f\x8b":
        stream = _gunzipped(_prepend(first, stream))
        first = next(stream, b"")
    room = free_bytes(target.parent) if limit_bytes is None else limit_bytes
    digest = hashlib.sha256()
    head = b""
    written = 0
    try:
        with part.open("wb") as out:
            for chunk in _prepend(first, stream):
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                written += len(chunk)
                if written > room:
                    raise NoSpace(
                        f"datastore full: {written // 2**20} MiB written and only "
                        f"{room // 2**20} MiB free in {target.parent}"
                    )
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(written)
            out.flush()
            os.fsync(out.fileno())
        if written == 0:
            raise ImageFileError("the image is empty (0 bytes)")
        found = detect(head)
        if declared not in ("auto", found):
            raise ImageFileError(f"declared format {declared} but the bytes are {found}")
        got = digest.hexdigest()
        if want and got != want:
            raise ImageFileError(f"checksum mismatch: expected sha256:{want}, got sha256:{got}")
        virtual = qcow2_virtual_size(head) if found == "qcow2" else written
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Stored(target, found, written, max(1, -(-virtual // 2**20)), f"sha256:{got}")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _expected_hex(expected: str) -> str:
    text = expected.strip().lower()
    if not text:
        return ""
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ImageFileError("checksum must be sha256:<64 hex digits>")
    return text


def copy_file(source: Path, target: Path, *, declared: str = "auto", expected: str = "") -> Stored:
    """Store a copy of a file on the front-end (a registration from a path, or a clone)."""
    try:
        with source.open("rb") as stream:
            return store(file_chunks(stream), target, declared=declared, expected=expected)
    except FileNotFoundError:
        raise ImageFileError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageFileError(f"{source} is a directory: register a rootfs as a tar") from None
    except PermissionError as exc:
        raise ImageFileError(f"{source}: {exc.strerror}") from None


def remove(path: str) -> None:
    """Remove an image's bytes (and a partial copy) if they are there."""
    if not path:
        return
    target = Path(path)
    for victim in (target, target.with_name(target.name + ".part")):
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim, ignore_errors=True)
        else:
            victim.unlink(missing_ok=True)
