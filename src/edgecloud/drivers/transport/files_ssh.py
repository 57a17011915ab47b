"""Copy one regular file to or from an SSH host over SFTP: `SshTransport.put_file`/`get_file`.

A copy holds one of the connection's session slots (the SFTP channel is a session) for as
long as it runs, and reconnects once, like a command does, when the connection was found
lost before the copy began. The data moves in chunks of `CHUNK` bytes, each split by
asyncssh into requests of the server's largest block (OpenSSH: 255 KiB) sent in parallel;
the next chunk is read while the previous one is being written.

OpenSSH's SFTP server speaks protocol version 3, which reports a full disk only as
"Failure": when a write fails so, the free space of the destination's file system is
asked for (statvfs@openssh.com) to tell "no space left on device" apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncssh

from edgecloud.drivers.base import DriverError, HostUnreachable, ProgressCallback
from edgecloud.drivers.transport.files_local import check_destination, check_source, why
from edgecloud.drivers.transport.ssh_common import reason

if TYPE_CHECKING:
    from edgecloud.drivers.transport.ssh import SshTransport

CHUNK = 16 * 1024 * 1024
MAX_REQUESTS = 128  # parallel SFTP requests per chunk (at most CHUNK / block size are used)
CLOSE_WAIT = 5.0
_REPORT_EVERY = 1024 * 1024
_NEARLY_FULL = 1024 * 1024  # free bytes under which a failed write means "no space left"

Direction = Literal["put", "get"]
T = TypeVar("T")


class _Failed(Exception):
    """A copy failed for a reason already worded; `remove` says whether to remove the
    (partial) destination."""

    def __init__(self, message: str, *, remove: bool) -> None:
        super().__init__(message)
        self.remove = remove


async def copy(
    t: SshTransport,
    direction: Direction,
    local: Path,
    remote: str,
    timeout: float,
    progress: ProgressCallback | None,
) -> int:
    """Copy `local` to `remote` ("put") or `remote` to `local` ("get"); see `Files`."""
    loop = asyncio.get_running_loop()
    where = f"{t.where}:{remote}"
    what = f"copying {local} to {where}" if direction == "put" else f"copying {where} to {local}"
    started = loop.time()
    sessions = t._session_slots()
    try:
        async with asyncio.timeout(timeout):
            await sessions.acquire()
    except TimeoutError:
        raise DriverError(f"{what} timed out after {timeout:g} s waiting for a session") from None
    sftp: asyncssh.SFTPClient | None = None
    try:
        before = loop.time()
        conn, sftp = await _open_sftp(t, what, started + timeout)
        # Connecting has its own timeout; it does not eat into the copy's.
        deadline = started + timeout + (loop.time() - before)
        copier = _Copier(sftp, local, remote, progress)
        try:
            async with asyncio.timeout_at(deadline):
                if direction == "put":
                    return await copier.put()
                return await copier.get()
        except TimeoutError:
            await _settle(copier.remove_partial(direction))
            raise DriverError(f"{what} timed out after {timeout:g} s") from None
        except _Failed as exc:
            if exc.remove:
                await _settle(copier.remove_partial(direction))
            raise DriverError(f"{what} failed: {exc}") from None
        except (OSError, asyncssh.Error) as exc:
            lost = conn.is_closed() or isinstance(
                exc, asyncssh.ConnectionLost | asyncssh.DisconnectError
            )
            if lost:
                await _settle(copier.remove_partial("get" if direction == "get" else "none"))
                raise HostUnreachable(
                    f"lost the connection to {t.where} while {what}: {reason(exc)}"
                ) from exc
            explained = await copier.explain(direction, exc)
            await _settle(copier.remove_partial(direction))
            raise DriverError(f"{what} failed: {explained}") from exc
        except BaseException:
            await _settle(copier.remove_partial(direction))
            raise
    finally:
        try:
            if sftp is not None:
                sftp.exit()
                await _settle(sftp.wait_closed())
        finally:
            sessions.release()


async def _open_sftp(
    t: SshTransport, what: str, retry_until: float
) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
    """Start an SFTP session, reconnecting once if the connection was lost (as `_start`)."""
    loop = asyncio.get_running_loop()
    reconnected = False
    pause = 0.005
    while True:
        conn = await t._connection()
        try:
            return conn, await conn.start_sftp_client()
        except (OSError, asyncssh.Error) as exc:
            if not conn.is_closed():
                if not isinstance(exc, asyncssh.ChannelOpenError):
                    raise DriverError(f"{what}: cannot start SFTP: {reason(exc)}") from exc
                if loop.time() + pause > retry_until:  # MaxSessions: retry a while
                    raise DriverError(
                        f"{t.where} refused a session for {what}: {reason(exc)}"
                    ) from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            failure = exc
        await t._forget(conn)
        if reconnected:
            raise HostUnreachable(
                f"lost the connection to {t.where} twice: {reason(failure)}"
            ) from failure
        reconnected = True


class _Copier:
    """One copy: the SFTP client, both paths, and whether the destination was opened."""

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        local: Path,
        remote: str,
        progress: ProgressCallback | None,
    ) -> None:
        self.sftp = sftp
        self.local = local
        self.remote = remote
        self.progress = progress
        self.opened = False  # the destination was created or truncated by us
        self.copied = 0
        self._reported = 0

    async def put(self) -> int:
        try:
            check_source(self.local)
            source = self.local.open("rb")
            check_source(self.local, source.fileno())
        except OSError as exc:
            raise _Failed(f"cannot read {self.local}: {why(exc)}", remove=False) from exc
        except DriverError as exc:
            raise _Failed(str(exc), remove=False) from None
        with source:
            await self._check_remote_destination()
            dest = await self._open_remote("wb")
            self.opened = True
            async with dest:
                data = await _in_thread(source.read, CHUNK)
                while data:
                    writing = asyncio.ensure_future(dest.write(data, self.copied))
                    try:
                        following = await _in_thread(source.read, CHUNK)
                        await asyncio.shield(writing)
                    except BaseException:
                        await _settle(writing)  # see _receive
                        raise
                    self._advance(len(data))
                    data = following
        self._advance(0, final=True)
        return self.copied

    async def get(self) -> int:
        try:
            attrs = await self.sftp.stat(self.remote)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            raise _Failed(f"{self.remote} does not exist", remove=False) from None
        if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
            raise _Failed(f"{self.remote} is not a regular file", remove=False)
        try:
            check_destination(self.local)
        except DriverError as exc:
            raise _Failed(str(exc), remove=False) from None
        source = await self._open_remote("rb")
        async with source:
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                out = os.open(self.local, flags, 0o644)
            except OSError as exc:
                raise _Failed(f"cannot write {self.local}: {why(exc)}", remove=False) from exc
            self.opened = True
            try:
                await self._receive(source, out)
                await self._local(_in_thread(os.fsync, out))
            finally:
                os.close(out)
        self._advance(0, final=True)
        return self.copied

    async def _receive(self, source: asyncssh.SFTPClientFile, out: int) -> None:
        # A chunk's requests are tasks of asyncssh's own that a cancel would not reach:
        # on failure, let the chunk in flight end (its requests are short) before the
        # file is closed, rather than cancel it.
        reading = asyncio.ensure_future(_read(source, 0))
        try:
            while data := await asyncio.shield(reading):
                offset = self.copied
                reading = asyncio.ensure_future(_read(source, offset + len(data)))
                await self._local(_in_thread(_write_all, out, data, offset))
                self._advance(len(data))
        finally:
            if not reading.done():
                await _settle(reading)

    async def _local(self, writing: Awaitable[None]) -> None:
        """Wait for a write to the local destination; word its failure."""
        try:
            await writing
        except OSError as exc:
            raise _Failed(f"cannot write {self.local}: {why(exc)}", remove=True) from exc

    async def _check_remote_destination(self) -> None:
        parent = posixpath.dirname(self.remote.rstrip("/")) or "."
        try:
            attrs = await self.sftp.stat(parent)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            raise _Failed(f"its directory {parent} does not exist", remove=False) from None
        if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise _Failed(f"{parent} is not a directory", remove=False)
        try:
            attrs = await self.sftp.stat(self.remote)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            return
        if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
            raise _Failed(f"{self.remote} exists and is not a regular file", remove=False)

    async def _open_remote(self, mode: str) -> asyncssh.SFTPClientFile:
        try:
            return await self.sftp.open(self.remote, mode, max_requests=MAX_REQUESTS)
        except asyncssh.SFTPError as exc:
            verb = "write" if "w" in mode else "read"
            raise _Failed(f"cannot {verb} {self.remote}: {_sftp_why(exc)}", remove=False) from exc

    def _advance(self, count: int, *, final: bool = False) -> None:
        self.copied += count
        if self.progress is None:
            return
        if final and self._reported == self.copied and self.copied:
            return
        if final or self.copied - self._reported >= _REPORT_EVERY:
            self._reported = self.copied
            with contextlib.suppress(Exception):  # a callback's bug must not break the copy
                self.progress(self.copied)

    async def explain(self, direction: Direction, exc: BaseException) -> str:
        """Word an SFTP error; a "Failure" while writing to a full disk is ENOSPC."""
        if isinstance(exc, asyncssh.SFTPError):
            if direction == "put" and self.opened and type(exc) is asyncssh.SFTPFailure:
                parent = posixpath.dirname(self.remote.rstrip("/")) or "."
                with contextlib.suppress(OSError, asyncssh.Error):
                    vfs = await self.sftp.statvfs(parent)
                    if vfs.bavail * vfs.frsize < _NEARLY_FULL or vfs.favail == 0:
                        return f"cannot write {self.remote}: no space left on device"
            return _sftp_why(exc)
        if isinstance(exc, OSError):
            return why(exc)
        return reason(exc)

    async def remove_partial(self, direction: Direction | Literal["none"]) -> None:
        """Remove the destination if this copy created or truncated it."""
        if not self.opened or direction == "none":
            return
        if direction == "get":
            with contextlib.suppress(OSError):
                self.local.unlink()
            return
        with contextlib.suppress(OSError, asyncssh.Error):
            await asyncio.wait_for(self.sftp.remove(self.remote), CLOSE_WAIT)


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking file I/O on a thread; when cancelled, still wait for it to end (the
    caller closes the file next: its descriptor must not be reused under the thread)."""
    job = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        if not job.cancelled():
            job.exception()  # retrieved (and dropped): the cancel wins
        raise


async def _read(source: asyncssh.SFTPClientFile, offset: int) -> bytes:
    data = await source.read(CHUNK, offset)
    if not isinstance(data, bytes):  # the file was opened in binary mode
        raise TypeError("SFTP read returned text")
    return data


def _write_all(out: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(out, view, offset)
        view, offset = view[written:], offset + written


def _sftp_why(exc: asyncssh.SFTPError) -> str:
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return "no such file or directory"
    if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
        return "permission denied"
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded):
        return "no space left on device"
    text = exc.reason or type(exc).__name__
    return text[:1].lower() + text[1:]


async def _settle(awaitable: Awaitable[object]) -> None:
    """Wait a little for cleanup; raise only when this task itself is being cancelled."""
    try:
        await asyncio.wait_for(awaitable, CLOSE_WAIT)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # noqa: S110 - cleanup is best effort
        pass
