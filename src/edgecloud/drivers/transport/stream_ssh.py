"""A long-lived command on an SSH host talked to in lines: `SshTransport.open_stream`.

The command holds one channel (and one of the connection's session slots) for as long as
it runs; its stdout is read on the SSH loop and each line handed to `on_line` there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable

import asyncssh

from edgecloud.drivers.base import DriverError, EndCallback, LineCallback

STDERR_TAIL = 20
_CLOSE_WAIT = 10.0


class SshStream:
    """One command on its own channel; `send` and `close` may be called from any thread."""

    def __init__(
        self,
        process: asyncssh.SSHClientProcess[bytes],
        loop: asyncio.AbstractEventLoop,
        where: str,
    ) -> None:
        self._process = process
        self._loop = loop
        self.where = where
        self.ended = False

    def send(self, data: bytes) -> None:
        """Queue `data` for the command's stdin."""
        if self.ended:
            raise DriverError(f"the stream to {self.where} has ended")
        self._loop.call_soon_threadsafe(self._write, data)

    def close(self) -> None:
        """Send end-of-file; the command exits once it has finished."""
        if not self.ended:
            self._loop.call_soon_threadsafe(self._eof)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.stdin.write(data)

    def _eof(self) -> None:
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.stdin.write_eof()


async def pump(
    stream: SshStream,
    process: asyncssh.SSHClientProcess[bytes],
    on_line: LineCallback,
    on_end: EndCallback,
    release: Callable[[], None],
    reason: Callable[[BaseException], str],
) -> None:
    """Hand each stdout line to `on_line` until the command ends; then report and release."""
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    errors = asyncio.get_running_loop().create_task(_read_stderr(process, tail))
    why, lost = "", False
    try:
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            with contextlib.suppress(Exception):  # a callback's bug must not stop the reader
                on_line(line)
    except (OSError, asyncssh.Error) as exc:
        why, lost = f"lost the connection to {stream.where}: {reason(exc)}", True
    finally:
        stream.ended = True
        await _settle(errors)
        process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait_closed(), _CLOSE_WAIT)
        release()
    status = process.exit_status
    if not why:
        if status is None:
            why, lost = f"lost the connection to {stream.where} (no exit status)", True
        else:
            why = f"the command on {stream.where} exited with status {status}"
    if tail:
        why += ": " + " | ".join(tail)[-500:]
    on_end(why, lost)


async def _read_stderr(
    process: asyncssh.SSHClientProcess[bytes], tail: collections.deque[str]
) -> None:
    with contextlib.suppress(OSError, asyncssh.Error):
        while line := await process.stderr.readline():
            tail.append(line.decode("utf-8", errors="replace").rstrip())


async def _settle(task: Awaitable[None]) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(task, 5.0)
