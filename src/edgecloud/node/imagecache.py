"""The host's image cache: ROOT/cache/images/<key>, a disk image file or an unpacked rootfs.

<key> is the sha256 of the bytes the front-end sent (the image, or the rootfs' tar). An
upload arrives as ROOT/cache/images/incoming/<part>; `image_commit` checks its hash and
moves it in place atomically (a hard link that cannot replace an entry, or the rename of a
directory unpacked beside it), so racing commits both succeed with one entry. An entry's
mtime is when it was last used: eviction removes the least recently used entries that no
guest's disk has as backing file (ROOT/guests/*/disks.json, written by disks.py).

Commits and disk set-ups hold the cache lock shared, eviction holds it exclusive: an entry
is never removed between its check and its use.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from edgecloud.node.protocol import (
    IMAGE_KEY,
    NodeError,
    flag,
    image_key,
    integer,
    part_name,
    root,
)

DISKS_JSON = "disks.json"  # in a guest's directory: its disks and what backs them
STALE_PART = 3600.0  # seconds after which an upload nobody committed is removed
_LOCK = ".lock"
_UNPACKING = ".unpack-"
_EVICTING = ".evict-"


class Entry(NamedTuple):
    """One cached image."""

    key: str
    path: Path
    kind: str  # "file" or "dir"
    bytes: int
    last_used: float


def images_dir(base: Path) -> Path:
    """Return ROOT/cache/images."""
    return base / "cache" / "images"


def incoming_dir(base: Path) -> Path:
    """Return ROOT/cache/images/incoming, where uploads arrive."""
    return images_dir(base) / "incoming"


def entry_path(base: Path, key: str) -> Path:
    """Return the path of a cache entry (present or not)."""
    return images_dir(base) / key


@contextlib.contextmanager
def locked(base: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the cache lock (shared to add or use entries, exclusive to remove them)."""
    directory = images_dir(base)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def kind_of(path: Path) -> str:
    """Return "file" or "dir" for a cache entry, "" when there is none."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return ""
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else ""


def usage(path: Path) -> int:
    """Return the bytes a file, or a whole tree, takes on disk (hard links counted once)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        return int(info.st_blocks) * 512
    total = int(info.st_blocks) * 512
    seen: set[tuple[int, int]] = set()
    for top, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                found = os.lstat(os.path.join(top, name))
                if found.st_nlink > 1 and not stat.S_ISDIR(found.st_mode):
                    if (found.st_dev, found.st_ino) in seen:
                        continue
                    seen.add((found.st_dev, found.st_ino))
                total += int(found.st_blocks) * 512
    return total


def touch(path: Path) -> None:
    """Mark an entry used now (its mtime orders eviction)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def sha256_of(path: Path) -> str:
    """Return the sha256 of a file in hex."""
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def recorded(guest_path: Path) -> dict[int, dict[str, Any]]:
    """Return a guest's disks.json: disk_id -> record ({} when absent or unreadable)."""
    try:
        raw = json.loads((guest_path / DISKS_JSON).read_text())
    except (OSError, ValueError):
        return {}
    disks = raw.get("disks") if isinstance(raw, dict) else None
    if not isinstance(disks, dict):
        return {}
    return {
        int(disk_id): record
        for disk_id, record in disks.items()
        if disk_id.isdigit() and isinstance(record, dict)
    }


def in_use(base: Path) -> set[str]:
    """Return the keys some guest's disk has as backing file."""
    used: set[str] = set()
    with contextlib.suppress(OSError):
        for guest in (base / "guests").iterdir():
            for record in recorded(guest).values():
                backing = record.get("backing")
                if isinstance(backing, str) and IMAGE_KEY.fullmatch(backing):
                    used.add(backing)
    return used


def entries(base: Path) -> list[Entry]:
    """Return the cached images, sorted by key."""
    found = []
    with contextlib.suppress(OSError):
        for path in images_dir(base).iterdir():
            kind = kind_of(path) if IMAGE_KEY.fullmatch(path.name) else ""
            if kind:
                with contextlib.suppress(OSError):
                    used = os.lstat(path).st_mtime
                    found.append(Entry(path.name, path, kind, usage(path), used))
    return sorted(found)


def status(request: dict[str, Any]) -> dict[str, Any]:
    """image_status: whether an image is cached, its kind and size (makes incoming/)."""
    base = root(request)
    path = entry_path(base, image_key(request))
    incoming_dir(base).mkdir(parents=True, exist_ok=True)
    kind = kind_of(path)
    return {"present": bool(kind), "bytes": usage(path) if kind else 0, "kind": kind}


def _commit_file(source: Path, target: Path) -> None:
    source.chmod(0o644)
    try:
        os.link(source, target)  # unlike a rename, never replaces an entry
    except FileExistsError:
        pass  # committed by a racing call: same key, same bytes
    except FileNotFoundError:
        if not kind_of(target):
            raise NodeError("missing", f"the upload {source.name} vanished") from None


def _commit_tree(source: Path, target: Path) -> None:
    from edgecloud.node.untar import unpack  # only commits of a rootfs need it

    scratch = Path(tempfile.mkdtemp(prefix=f"{_UNPACKING}{target.name[:12]}-", dir=target.parent))
    try:
        unpack(source, scratch)
        try:
            os.rename(scratch, target)
        except OSError as exc:  # committed by a racing call meanwhile
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def commit(request: dict[str, Any]) -> dict[str, Any]:
    """image_commit: check an upload's sha256 and make it the cache entry of its key."""
    base, key, part = root(request), image_key(request), part_name(request)
    unpack = flag(request, "unpack")
    source = incoming_dir(base) / part
    target = entry_path(base, key)
    with locked(base, exclusive=False):
        if not kind_of(target):
            if kind_of(source) != "file":
                raise NodeError("missing", f"there is no upload {part!r} to commit")
            digest = sha256_of(source)
            if digest != key:
                source.unlink(missing_ok=True)
                raise NodeError(
                    "failed",
                    f"upload {part!r} has sha256 {digest}, expected {key}: it was deleted",
                )
            try:
                (_commit_tree if unpack else _commit_file)(source, target)
            except NodeError:
                source.unlink(missing_ok=True)  # a refused archive will not get better
                raise
        source.unlink(missing_ok=True)
        touch(target)
        return {"bytes": usage(target)}


def listing(request: dict[str, Any]) -> dict[str, Any]:
    """image_list: every cached image, with its size, last use and whether a disk uses it."""
    base = root(request)
    used = in_use(base)
    images = [
        {
            "key": entry.key,
            "bytes": entry.bytes,
            "kind": entry.kind,
            "last_used": entry.last_used,
            "in_use": entry.key in used,
        }
        for entry in entries(base)
    ]
    return {"images": images}


def _remove(path: Path) -> None:
    """Remove an entry; a directory is renamed away first, so it never looks half there."""
    if kind_of(path) != "dir":
        path.unlink(missing_ok=True)
        return
    doomed = path.with_name(f"{_EVICTING}{path.name[:12]}-{os.urandom(4).hex()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _drop_leftovers(base: Path) -> None:
    """Remove uploads older than STALE_PART, and unpack or eviction leftovers (under the
    exclusive lock no commit is running, so every one of those is a leftover)."""
    cutoff = time.time() - STALE_PART
    with contextlib.suppress(OSError):
        for path in incoming_dir(base).iterdir():
            with contextlib.suppress(OSError):
                if os.lstat(path).st_mtime < cutoff and kind_of(path) != "dir":
                    path.unlink()
    with contextlib.suppress(OSError):
        for path in images_dir(base).iterdir():
            if path.name.startswith((_UNPACKING, _EVICTING)):
                shutil.rmtree(path, ignore_errors=True)


def evict(request: dict[str, Any]) -> dict[str, Any]:
    """image_evict: remove least recently used entries no disk uses, down to max_bytes."""
    base = root(request)
    limit = integer(request, "max_bytes", minimum=0)
    removed = []
    with locked(base, exclusive=True):
        _drop_leftovers(base)
        used = in_use(base)
        cached = sorted(entries(base), key=lambda entry: (entry.last_used, entry.key))
        total = sum(entry.bytes for entry in cached)
        for entry in cached:
            if total <= limit:
                break
            if entry.key in used:
                continue
            _remove(entry.path)
            total -= entry.bytes
            removed.append(entry.key)
    return {"removed": removed, "bytes": total}


def drop_part(request: dict[str, Any]) -> dict[str, Any]:
    """image_drop_part: remove an upload or an export the front-end is done with."""
    path = incoming_dir(root(request)) / part_name(request)
    try:
        path.unlink()
    except FileNotFoundError:
        return {"removed": False}
    return {"removed": True}
