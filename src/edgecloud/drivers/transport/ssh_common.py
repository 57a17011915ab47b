"""The SSH transport's plumbing: the process's one asyncio loop, and host key helpers.

Every `SshTransport` of the process runs its coroutines on one loop in a daemon thread
(started on first use); `call` submits one from a synchronous caller and waits for it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import asyncssh

from edgecloud.drivers.base import DriverError, HostUnreachable

T = TypeVar("T")

# How long the calling thread waits beyond the deadlines the coroutine keeps itself.
GRACE = 5.0
# Host key types asked for when reading a key to pin, best first.
PIN_ALGS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]


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


def call(coro: Coroutine[Any, Any, T], wait: float, what: str) -> T:
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


def where_of(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def reason(exc: BaseException) -> str:
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


def import_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"not an OpenSSH public key: {line[:40]!r}...") from exc


async def server_key(
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
    where = where_of(address, port)

    async def fetch() -> str:
        try:
            key = await server_key(address, port, PIN_ALGS, timeout)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise HostUnreachable(f"cannot read the host key of {where}: {reason(exc)}") from exc
        if key is None:
            raise HostUnreachable(f"{where} presented no host key")
        return key.export_public_key("openssh").decode().strip()

    return call(fetch(), timeout + GRACE, f"reading the host key of {where}")
