"""Run commands on a host over SSH (asyncssh): one persistent, multiplexed connection per host.

`Transport.run` is synchronous; the SSH work happens on one asyncio loop running in a daemon
thread shared by every `SshTransport` of the process (started on first use). A call submits a
coroutine to that loop and waits for it, so any number of threads can use one transport at
once: asyncssh runs each command on its own channel of the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from edgecloud.drivers.base import CommandResult, DriverError, HostKeyMismatch, HostUnreachable

__all__ = ["HostKeyMismatch", "SshTransport", "fetch_host_key"]

T = TypeVar("T")

# Commands one connection runs at once; OpenSSH's sshd allows 10 sessions (MaxSessions).
DEFAULT_MAX_SESSIONS = 8
# How long the calling thread waits beyond the deadlines the coroutine keeps itself.
_GRACE = 5.0
# Host key types asked for when reading a key to pin, best first.
_PIN_ALGS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]
_KEEPALIVE_INTERVAL = 30.0


_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """Return the process's SSH loop, starting its thread on first use."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="edgecloud-ssh", daemon=True)
            thread.start()
            _loop, _loop_thread = loop, thread
        return _loop


def _call(coro: Coroutine[Any, Any, T], wait: float, what: str) -> T:
    """Run `coro` on the SSH loop and wait at most `wait` seconds for its result."""
    loop = _event_loop()
    if threading.current_thread() is _loop_thread:
        coro.close()
        raise RuntimeError("SshTransport is synchronous: do not call it from its own loop")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(wait)
    except TimeoutError:
        if future.done():
            raise  # the coroutine's own error, not our wait
        future.cancel()
        raise DriverError(f"{what}: no answer after {wait:g} s") from None
    except BaseException:
        future.cancel()
        raise


def _where(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _reason(exc: BaseException) -> str:
    """Say in a few words why a connection failed."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the address ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # asyncio's strerror is "Connect call failed (...)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _import_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"not an OpenSSH public key: {line[:40]!r}...") from exc


async def _server_key(
    address: str, port: int, algs: Sequence[str], timeout: float
) -> asyncssh.SSHKey | None:
    """Connect without verification only to read the key the server presents."""
    return await asyncio.wait_for(
        asyncssh.get_server_host_key(address, port, server_host_key_algs=list(algs), config=None),
        timeout,
    )


def fetch_host_key(address: str, port: int = 22, timeout: float = 10.0) -> str:
    """Return the host's SSH key in OpenSSH format ("ssh-ed25519 AAAA..."), for pinning.

    Nothing is verified: call this once, when the host is added, and pin the answer.
    """
    where = _where(address, port)

    async def fetch() -> str:
        try:
            key = await _server_key(address, port, _PIN_ALGS, timeout)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise HostUnreachable(f"cannot read the host key of {where}: {_reason(exc)}") from exc
        if key is None:
            raise HostUnreachable(f"{where} presented no host key")
        return key.export_public_key("openssh").decode().strip()

    return _call(fetch(), timeout + _GRACE, f"reading the host key of {where}")


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
        self.where = _where(address, port)
        self.connects = 0  # connections opened so far
        self.last_connect_seconds: float | None = None
        self._pinned = _import_key(host_key) if host_key else None
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
        wait = timeout + 3 * self.connect_timeout + _GRACE  # connect, key check, reconnect
        return _call(self._run(shlex.join(args), args[0], timeout, stdin), wait, self._what(args))

    def connect(self) -> None:
        """Open the connection now (it otherwise opens on the first `run`)."""
        _call(self._connection(), self.connect_timeout + _GRACE, f"connecting to {self.where}")

    def close(self) -> None:
        """Drop the connection; a later `run` opens a new one."""
        if self._conn is None:
            return
        _call(self._close(), self.connect_timeout + _GRACE, f"closing {self.where}")

    def _what(self, args: list[str]) -> str:
        return f"{args[0]} on {self.where}"

    # --- on the loop ---------------------------------------------------------------

    async def _run(
        self, command: str, name: str, timeout: float, stdin: bytes | None
    ) -> CommandResult:
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
        # From here the slot is released when the channel has closed (see _abandon).
        # Connecting has its own timeout; it does not eat into the command's.
        deadline = started + timeout + (loop.time() - before)
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
                f"lost the connection to {self.where} while running {name}: {_reason(exc)}"
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
                    f"lost the connection to {self.where} twice: {_reason(failure)}"
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
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise await self._mismatch() from exc
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(
                f"cannot log in to {self.where} as {self.user}: {_reason(exc)}"
                f" (is {self.client_key.name}.pub in its authorized_keys?)"
            ) from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise HostUnreachable(f"cannot connect to {self.where}: {_reason(exc)}") from exc
        self.connects += 1
        self.last_connect_seconds = time.monotonic() - started
        return conn

    async def _mismatch(self) -> HostUnreachable:
        """Build the error for a host whose key is not the pinned one (reading the new key)."""
        assert self._pinned is not None
        expected = self._pinned.get_fingerprint()
        algs = [a.decode() for a in self._pinned.sig_algorithms]
        got = "an unknown key"
        for offer in (algs, _PIN_ALGS):
            try:
                key = await _server_key(self.address, self.port, offer, self.connect_timeout)
            except (OSError, asyncssh.Error, TimeoutError):
                continue
            if key is not None:
                got = key.get_fingerprint()
                break
        return HostKeyMismatch(
            f"host key of {self.where} changed: expected {expected}, got {got}; refusing to"
            " connect (remove and re-add the host if this is expected)"
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
