"""Talking to one QEMU over its QMP socket: one short asyncio session per call.

QEMU binds the socket as ``qmp.sock`` relative to the guest directory (it starts with
that directory as its working directory), so a long ROOT never hits the 108-byte limit of
UNIX socket paths; we connect through ``/proc/self/fd/<dir fd>/qmp.sock`` for the same
reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import QMPClient, QMPError

from edgecloud.node.protocol import NodeError

T = TypeVar("T")
SOCKET_NAME = "qmp.sock"


async def _session(
    guest_path: Path, steps: Callable[[QMPClient], Awaitable[T]], timeout: float
) -> T:
    dir_fd = os.open(guest_path, os.O_PATH | os.O_DIRECTORY)
    client = QMPClient("edgecloud-node")
    try:
        address = f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}"
        await asyncio.wait_for(client.connect(address), timeout=min(timeout, 5.0))
        return await asyncio.wait_for(steps(client), timeout=timeout)
    finally:
        os.close(dir_fd)
        # After `quit` the server hangs up first: disconnect() then raises EOFError.
        with contextlib.suppress(Exception):
            await client.disconnect()


def session(
    guest_path: Path, steps: Callable[[QMPClient], Awaitable[T]], timeout: float = 10.0
) -> T:
    """Run `steps` against the guest's QMP; errors become NodeError("failed")."""
    try:
        return asyncio.run(_session(guest_path, steps, timeout))
    except (TimeoutError, QMPError, OSError, EOFError) as exc:
        raise NodeError("failed", f"QMP: {type(exc).__name__}: {exc}") from exc


def execute(guest_path: Path, command: str, arguments: dict[str, Any] | None = None) -> Any:
    """Run one QMP command and return its result."""

    async def steps(client: QMPClient) -> Any:
        return await client.execute(command, arguments)

    return session(guest_path, steps)


def run_status(guest_path: Path) -> str | None:
    """Return QEMU's run state ("running", "paused", ...) or None when QMP does not answer."""

    async def steps(client: QMPClient) -> Any:
        return await client.execute("query-status")

    try:
        result = session(guest_path, steps, timeout=3.0)
    except NodeError:
        return None
    return str(result.get("status")) if isinstance(result, dict) else None
