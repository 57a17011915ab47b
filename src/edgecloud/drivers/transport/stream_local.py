"""A long-lived local command talked to in lines: `LocalTransport.open_stream`."""

from __future__ import annotations

import collections
import contextlib
import subprocess
import threading
from collections.abc import Sequence

from edgecloud.drivers.base import DriverError, EndCallback, LineCallback

# Lines of the command's stderr kept to say why it ended.
STDERR_TAIL = 20


class LocalStream:
    """A child process of this one; its stdout lines go to `on_line` from a reader thread."""

    def __init__(self, argv: Sequence[str], on_line: LineCallback, on_end: EndCallback) -> None:
        args = list(argv)
        if not args:
            raise ValueError("empty argv")
        self.name = args[0]
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise DriverError(f"cannot start {self.name}: {exc.strerror or exc}") from exc
        self.pid = self._proc.pid
        self._on_line = on_line
        self._on_end = on_end
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._write_lock = threading.Lock()
        self._errors = threading.Thread(target=self._read_stderr, daemon=True)
        self._errors.start()
        threading.Thread(target=self._read_stdout, name=f"stream-{self.pid}", daemon=True).start()

    def send(self, data: bytes) -> None:
        """Write to the command's stdin."""
        stdin = self._proc.stdin
        assert stdin is not None
        with self._write_lock:
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError) as exc:
                raise DriverError(f"{self.name} (pid {self.pid}) has ended") from exc

    def close(self) -> None:
        """Close the command's stdin; the reader thread reaps it once it exits."""
        with self._write_lock, contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._tail.append(line.decode("utf-8", errors="replace").rstrip())

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(Exception):  # a callback's bug must not stop the reader
                self._on_line(line)
        self.close()
        status = self._proc.wait()
        self._errors.join(5.0)
        why = f"{self.name} exited with status {status}"
        if self._tail:
            why += ": " + " | ".join(self._tail)[-500:]
        self._on_end(why, False)
