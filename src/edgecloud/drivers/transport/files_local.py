"""Copy one regular file on this machine: `LocalTransport.put_file` and `get_file`.

The data moves in 1 MiB chunks with `os.sendfile` (in the kernel), falling back to reads
and writes where the file systems do not support it; the destination is synced at the end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from pathlib import Path

from edgecloud.drivers.base import DriverError, ProgressCallback

CHUNK = 1024 * 1024


def why(exc: OSError) -> str:
    """Say in a few lowercase words why a file operation failed."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded (no space left for this user)"
    text = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def check_destination(dest: Path) -> None:
    """Refuse a destination whose directory is missing or that is not a regular file."""
    if not dest.parent.is_dir():
        raise DriverError(f"cannot write {dest}: its directory {dest.parent} does not exist")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(dest.stat().st_mode):
            raise DriverError(f"cannot write {dest}: it exists and is not a regular file")


def check_source(src: Path, fd: int | None = None) -> None:
    """Refuse a source that is not a regular file (before opening it: it may be a FIFO)."""
    mode = (os.fstat(fd) if fd is not None else src.stat()).st_mode
    if not stat.S_ISREG(mode):
        raise DriverError(f"cannot read {src}: not a regular file")


def copy_file(
    src: Path, dest: Path, *, timeout: float, progress: ProgressCallback | None = None
) -> int:
    """Copy `src` to `dest` within `timeout` seconds; return the bytes copied.

    On any failure the partial destination is removed.
    """
    deadline = time.monotonic() + timeout
    check_destination(dest)
    try:
        check_source(src)
        source = src.open("rb")
    except OSError as exc:
        raise DriverError(f"cannot read {src}: {why(exc)}") from exc
    with source:
        check_source(src, source.fileno())
        with contextlib.suppress(OSError):
            if os.path.samefile(src, dest):
                raise DriverError(f"cannot copy {src} onto itself")
        try:
            out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DriverError(f"cannot write {dest}: {why(exc)}") from exc
        try:
            copied = _pump(source.fileno(), out, deadline, timeout, progress, f"{src} to {dest}")
            os.fsync(out)
        except OSError as exc:
            _remove(out, dest)
            raise DriverError(f"copying {src} to {dest} failed: {why(exc)}") from exc
        except BaseException:
            _remove(out, dest)
            raise
        os.close(out)
    if progress is not None and copied == 0:
        _report(progress, 0)  # a bigger file was reported chunk by chunk
    return copied


def _pump(
    source: int,
    out: int,
    deadline: float,
    timeout: float,
    progress: ProgressCallback | None,
    what: str,
) -> int:
    copied = 0
    use_sendfile = True
    while True:
        if use_sendfile:
            try:
                count = os.sendfile(out, source, None, CHUNK)
            except OSError as exc:
                if copied or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                use_sendfile = False
                continue
        else:
            data = os.read(source, CHUNK)
            count = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        if count == 0:
            return copied
        copied += count
        if time.monotonic() > deadline:
            raise DriverError(f"copying {what} timed out after {timeout:g} s")
        if progress is not None:
            _report(progress, copied)


def _report(progress: ProgressCallback, copied: int) -> None:
    with contextlib.suppress(Exception):  # a callback's bug must not break the copy
        progress(copied)


def _remove(out: int, dest: Path) -> None:
    with contextlib.suppress(OSError):
        os.close(out)
    with contextlib.suppress(OSError):
        dest.unlink()
