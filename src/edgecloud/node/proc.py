"""Processes of guests: is this PID still our guest, what does it use, and ending it.

Several test hosts share one process table, and PIDs get reused: a PID is only taken for
a guest's when its command line names that guest (QEMU's carries the absolute path of the
guest's pid file). Orphans may linger as zombies here (PID 1 does not always reap them
promptly), so a zombie counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_pid(path: Path) -> int | None:
    """Return the PID in a pid file, or None."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 1 else None


def _stat_fields(pid: int) -> list[str] | None:
    """Return /proc/<pid>/stat's fields after the command name (field 3 onwards)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cmdline(pid: int) -> list[str]:
    """Return a process's argv ([] when it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def alive(pid: int | None, needle: str) -> bool:
    """Return whether `pid` runs and one of its arguments contains `needle`."""
    if pid is None:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return any(needle in arg for arg in cmdline(pid))


def figures(pid: int | None) -> dict[str, float]:
    """Return {"cpu_seconds", "memory_mb"} of one process (zeros when it is gone)."""
    cpu = 0.0
    rss_kb = 0
    fields = _stat_fields(pid) if pid else None
    if fields and len(fields) > 12:
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"cpu_seconds": round(cpu, 2), "memory_mb": round(rss_kb / 1024, 1)}


def wait_gone(pid: int, needle: str, timeout: float) -> bool:
    """Wait up to `timeout` s for a process to end; return whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid, needle):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill(pid: int | None, needle: str, timeout: float = 5.0) -> None:
    """SIGKILL a process if (and only if) it still is the one `needle` names; wait for it."""
    if pid is None or not alive(pid, needle):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, needle, timeout)
