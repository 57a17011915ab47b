"""Run commands on a host over SSH (asyncssh): one persistent, multiplexed connection per host.

`Transport.run` is synchronous; the SSH work happens on one asyncio loop running in a daemon
thread shared by every `SshTransport` of the process (see ssh_common). A call submits a
coroutine to that loop and waits for it, so any number of threads can use one transport at
once: asyncssh runs each command on its own channel of the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import asyncssh

from edgecloud.drivers.base import (
    CommandResult,
    DriverError,
    EndCallback,
    HostKeyMismatch,
    HostUnreachable,
    LineCallback,
    ProgressCallback,
)
from edgecloud.drivers.transport import files_ssh
from edgecloud.drivers.transport.ssh_common import (
    GRACE,
    PIN_ALGS,
    call,
    fetch_host_key,
    import_key,
    reason,
    server_key,
    where_of,
)
from edgecloud.drivers.transport.stream_ssh import SshStream, pump

__all__ = ["HostKeyMismatch", "SshTransport", "fetch_host_key"]

T = TypeVar("T")

# Commands one connection runs at once; OpenSSH's sshd allows 10 sessions (MaxSessions).
DEFAULT_MAX_SESSIONS = 8
_KEEPALIVE_INTERVAL = 30.0
# AES-GCM first: with AES-NI it moves image bytes ~1.4x faster than chacha20-poly1305
# (asyncssh's first choice); OpenSSH's sshd offers all of these by default.
_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]


REFUSED = "refusing to connect"  # in the error of a host key that does not match


class SshTransport:
    """A `Transport` to one host over one persistent SSH connection.

    The connection opens on first use and is reused by every call, from any thread; when it
    was lost it is opened again once, transparently. With `host_key` set, the host must
    present exactly that key (`HostKeyMismatch` otherwise); with None nothing is verified.
    """

    def __init__(
        self,
        address: str,
        *,
        port: int = 22,
        user: str = "root",
        client_key: Path,
        host_key: str | None,
        connect_timeout: float = 10.0,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.address = address
        self.port = port
        self.user = user
        self.client_key = client_key
        self.host_key = host_key
        self.connect_timeout = connect_timeout
        self.max_sessions = max_sessions
        self.where = where_of(address, port)
        self.connects = 0  # connections opened so far
        self.last_connect_seconds: float | None = None
        self._pinned = import_key(host_key) if host_key else None
        self._conn: asyncssh.SSHClientConnection | None = None
        # Made on the loop, on first use.
        self._lock: asyncio.Lock | None = None
        self._sessions: asyncio.Semaphore | None = None
        self._lingering: set[asyncio.Task[None]] = set()  # channels given up on, still open

    def __repr__(self) -> str:
        return f"SshTransport({self.user}@{self.where})"

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult:
        """Run `argv` on the host; a non-zero exit is a result, not an error.

        Raises `HostUnreachable` when the host cannot be reached (or was lost while the
        command ran) and `DriverError` when the command did not end within `timeout`
        seconds (its channel is then closed after a KILL signal).
        """
        if isinstance(argv, str):
            raise TypeError("argv must be a list of arguments, not a string")
        args = list(argv)
        if not args:
            raise ValueError("empty argv")
        wait = timeout + 3 * self.connect_timeout + GRACE  # connect, key check, reconnect
        return call(self._run(shlex.join(args), args[0], timeout, stdin), wait, self._what(args))

    def open_stream(
        self,
        argv: Sequence[str],
        *,
        on_line: LineCallback,
        on_end: EndCallback,
        timeout: float,
    ) -> SshStream:
        """Start `argv` on a channel of its own and talk to it in lines (see `SshStream`).

        The channel holds one of the connection's session slots until the command ends.
        """
        args = list(argv)
        if not args:
            raise ValueError("empty argv")
        wait = timeout + 3 * self.connect_timeout + GRACE
        opening = self._open_stream(shlex.join(args), args[0], on_line, on_end, timeout)
        return call(opening, wait, self._what(args))

    def put_file(
        self,
        local: Path,
        remote: str,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy `local` to `remote` on the host over SFTP (see `Files` and files_ssh)."""
        copying = files_ssh.copy(self, "put", Path(local), remote, timeout, progress)
        return call(copying, self._copy_wait(timeout), f"copying {local} to {self.where}")

    def get_file(
        self,
        remote: str,
        local: Path,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy `remote` on the host to `local` over SFTP (see `Files` and files_ssh)."""
        copying = files_ssh.copy(self, "get", Path(local), remote, timeout, progress)
        return call(copying, self._copy_wait(timeout), f"copying {remote} from {self.where}")

    def _copy_wait(self, timeout: float) -> float:
        # Connect (and reconnect), then copy, then remove a partial file and close.
        return timeout + 3 * self.connect_timeout + 2 * files_ssh.CLOSE_WAIT + GRACE

    def connect(self) -> None:
        """Open the connection now (it otherwise opens on the first `run`)."""
        call(self._connection(), self.connect_timeout + GRACE, f"connecting to {self.where}")

    def close(self) -> None:
        """Drop the connection; a later `run` opens a new one."""
        if self._conn is None:
            return
        call(self._close(), self.connect_timeout + GRACE, f"closing {self.where}")

    def _what(self, args: list[str]) -> str:
        return f"{args[0]} on {self.where}"

    # --- on the loop ---------------------------------------------------------------

    async def _run(
        self, command: str, name: str, timeout: float, stdin: bytes | None
    ) -> CommandResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        process, starting = await self._open_channel(command, name, timeout)
        sessions = self._session_slots()
        # From here the slot is released when the channel has closed (see _abandon).
        # Connecting has its own timeout; it does not eat into the command's.
        deadline = started + timeout + starting
        try:
            async with asyncio.timeout_at(deadline):
                if stdin:
                    process.stdin.write(stdin)
                process.stdin.write_eof()
                out, err = await process.communicate()
        except TimeoutError:
            self._abandon(process)
            raise DriverError(f"{name} on {self.where} timed out after {timeout:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            self._abandon(process)
            raise HostUnreachable(
                f"lost the connection to {self.where} while running {name}: {reason(exc)}"
            ) from exc
        except BaseException:
            self._abandon(process)
            raise
        sessions.release()
        status = process.returncode
        if status is None:
            raise HostUnreachable(
                f"lost the connection to {self.where} while running {name} (no exit status)"
            )
        return CommandResult(
            status,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    async def _open_stream(
        self, command: str, name: str, on_line: LineCallback, on_end: EndCallback, timeout: float
    ) -> SshStream:
        loop = asyncio.get_running_loop()
        process, _ = await self._open_channel(command, name, timeout)
        sessions = self._session_slots()
        stream = SshStream(process, loop, self.where)
        task = loop.create_task(pump(stream, process, on_line, on_end, sessions.release, reason))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)
        return stream

    async def _open_channel(
        self, command: str, name: str, timeout: float
    ) -> tuple[asyncssh.SSHClientProcess[bytes], float]:
        """Take a session slot and start `command` on a channel of its own within
        `timeout` seconds; the caller gives the slot back once the channel has closed.

        Returns the process and the seconds spent connecting and opening the channel.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        sessions = self._session_slots()
        try:
            async with asyncio.timeout(timeout):
                await sessions.acquire()
        except TimeoutError:
            raise DriverError(
                f"{name} on {self.where} timed out after {timeout:g} s waiting for a session"
            ) from None
        try:
            before = loop.time()
            process = await self._start(command, name, started + timeout)
        except BaseException:
            sessions.release()
            raise
        return process, loop.time() - before

    def _session_slots(self) -> asyncio.Semaphore:
        if self._sessions is None:
            self._sessions = asyncio.Semaphore(self.max_sessions)
        return self._sessions

    def _abandon(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        """Give up on a command: ask for a KILL, close its channel, free its slot later.

        OpenSSH's sshd refuses signals in root sessions (it runs them without privilege
        separation) and keeps a channel, and its MaxSessions slot, until the command
        exits; so the slot is given back only when the server has closed the channel.
        """
        with contextlib.suppress(OSError, asyncssh.Error):
            process.send_signal("KILL")
        process.close()
        task = asyncio.get_running_loop().create_task(self._release_when_closed(process))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _release_when_closed(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        try:
            await process.wait_closed()
        finally:
            self._session_slots().release()

    async def _start(
        self, command: str, name: str, retry_until: float
    ) -> asyncssh.SSHClientProcess[bytes]:
        """Open a channel running `command`, reconnecting once if the connection was lost.

        sshd frees a finished session a moment after its channel closed, so a busy
        connection can briefly be refused a session (MaxSessions): retry until `retry_until`.
        """
        loop = asyncio.get_running_loop()
        reconnected = False
        pause = 0.005
        while True:
            conn = await self._connection()
            try:
                return await conn.create_process(command, encoding=None)
            except asyncssh.ChannelOpenError as exc:
                if not conn.is_closed():
                    if loop.time() + pause > retry_until:
                        raise DriverError(
                            f"{self.where} refused a session for {name}: {exc.reason}"
                        ) from exc
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.2)
                    continue
                failure: BaseException = exc
            except (OSError, asyncssh.Error) as exc:
                failure = exc
            await self._forget(conn)
            if reconnected:
                raise HostUnreachable(
                    f"lost the connection to {self.where} twice: {reason(failure)}"
                ) from failure
            reconnected = True

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return conn
            self._conn = None
            self._conn = await self._connect()
            return self._conn

    async def _connect(self) -> asyncssh.SSHClientConnection:
        known_hosts = (
            asyncssh.import_known_hosts("* " + self._pinned.export_public_key().decode())
            if self._pinned is not None
            else None
        )
        started = time.monotonic()
        try:
            conn = await asyncssh.connect(
                self.address,
                self.port,
                username=self.user,
                client_keys=[str(self.client_key)],
                known_hosts=known_hosts,
                config=None,
                agent_path=None,
                preferred_auth="publickey",
                connect_timeout=self.connect_timeout,
                keepalive_interval=_KEEPALIVE_INTERVAL,
                keepalive_count_max=3,
                encryption_algs=_CIPHERS,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise await self._mismatch() from exc
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(
                f"cannot log in to {self.where} as {self.user}: {reason(exc)}"
                f" (is {self.client_key.name}.pub in its authorized_keys?)"
            ) from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise HostUnreachable(f"cannot connect to {self.where}: {reason(exc)}") from exc
        self.connects += 1
        self.last_connect_seconds = time.monotonic() - started
        return conn

    async def _mismatch(self) -> HostUnreachable:
        """Build the error for a host whose key is not the pinned one (reading the new key)."""
        assert self._pinned is not None
        expected = self._pinned.get_fingerprint()
        algs = [a.decode() for a in self._pinned.sig_algorithms]
        got = "an unknown key"
        for offer in (algs, PIN_ALGS):
            try:
                key = await server_key(self.address, self.port, offer, self.connect_timeout)
            except (OSError, asyncssh.Error, TimeoutError):
                continue
            if key is not None:
                got = key.get_fingerprint()
                break
        return HostKeyMismatch(
            f"host key of {self.where} changed: expected {expected}, got {got}; {REFUSED}"
            " (remove and re-add the host if this is expected)"
        )

    async def _forget(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.abort()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), self.connect_timeout)
