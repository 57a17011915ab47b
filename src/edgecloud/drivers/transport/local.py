"""Run commands on the front-end's own machine: the transport of `local` hosts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from edgecloud.drivers.base import (
    CommandResult,
    DriverError,
    EndCallback,
    LineCallback,
    ProgressCallback,
)
from edgecloud.drivers.transport.files_local import copy_file
from edgecloud.drivers.transport.stream_local import LocalStream

# How long to wait for the pipes to drain once a timed-out command's group was killed.
_DRAIN_AFTER_KILL = 5.0


class LocalTransport:
    """A `Transport` that runs argument lists as child processes of this one.

    Like a shell would, a missing program gives exit status 127 and one that cannot be
    executed 126 (callers read `exit_status`); only a timeout raises `DriverError`. Each
    command runs in a session of its own so that a timeout kills everything it started.
    """

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult:
        """Run `argv`, feed it `stdin` (or nothing), and wait at most `timeout` seconds."""
        args = list(argv)
        if not args:
            raise ValueError("empty argv")
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            return CommandResult(127, "", f"{args[0]}: command not found\n")
        except PermissionError as exc:
            return CommandResult(126, "", f"{args[0]}: {exc.strerror}\n")
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise DriverError(f"{args[0]} timed out after {timeout:g} s") from None
        except BaseException:
            _kill_group(proc)
            raise
        return CommandResult(
            proc.returncode,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    def open_stream(
        self,
        argv: Sequence[str],
        *,
        on_line: LineCallback,
        on_end: EndCallback,
        timeout: float,
    ) -> LocalStream:
        """Start `argv` as a child process and talk to it in lines (see `LocalStream`)."""
        del timeout  # starting a local process does not wait
        return LocalStream(argv, on_line, on_end)

    def put_file(
        self,
        local: Path,
        remote: str,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy `local` to the path `remote` (on this same machine); see `Files`."""
        return copy_file(Path(local), Path(remote), timeout=timeout, progress=progress)

    def get_file(
        self,
        remote: str,
        local: Path,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy the path `remote` (on this same machine) to `local`; see `Files`."""
        return copy_file(Path(remote), Path(local), timeout=timeout, progress=progress)

    def close(self) -> None:
        """Nothing to drop: there is no connection."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and whatever it started in its session, then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=_DRAIN_AFTER_KILL)
    except subprocess.TimeoutExpired:
        # Something left the session and still holds a pipe: stop reading from it.
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        proc.wait()
