"""Where fake hosts keep their guests: in memory, or on disk so they outlive the front-end.

On disk, host ``h`` keeps one JSON file per VM in ``<state_dir>/<h>/<vm_id>.json``,
replaced atomically (temp file + ``os.replace``), so a front-end killed at any moment
leaves every file either old or new, never torn. A host's guests are changed only inside
``open(host)``, which holds a thread lock and, on disk, an ``flock`` of the host's
directory too, so two processes sharing a state directory do not interleave either.

A guest's record stays after it is stopped or removed (state "absent"): it carries the
VM's deploy and failure counters, which must survive for the crash tests.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

from edgecloud.drivers.base import DriverError

RUNNING = "running"
SAVED = "saved"
ABSENT = "absent"


@dataclass(slots=True)
class FakeGuest:
    """Hold one VM's guest on one fake host: its state, what its template asked, counters."""

    vm_id: int
    state: str = ABSENT  # running | saved | absent (stopped, removed, or never started)
    cpu: float = 0.0
    memory_mb: int = 0
    started_at: float = 0.0  # wall-clock time of the last deploy: it survives restarts
    action_delay: float = 0.0
    fail: list[str] = field(default_factory=list)
    fail_times: int | None = None
    vanish_after: float | None = None
    failures: dict[str, int] = field(default_factory=dict)  # failed calls per action
    deploys: int = 0
    reboots: int = 0
    nics: list[int] = field(default_factory=list)  # NIC ids hot-plugged into it

    def present(self, now: float) -> bool:
        """Tell whether the host still has this guest (running and not vanished, or saved)."""
        if self.state == SAVED:
            return True
        return self.state == RUNNING and not self.vanished(now)

    def vanished(self, now: float) -> bool:
        """Tell whether a running guest has passed its FAKE_VANISH_AFTER."""
        return self.vanish_after is not None and now - self.started_at >= self.vanish_after

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FakeGuest:
        """Rebuild a guest from its JSON file."""
        return cls(**data)


class GuestTable(Protocol):
    """One host's guests while its lock is held: get, change, put back."""

    def get(self, vm_id: int) -> FakeGuest | None:
        """Return the VM's guest record, or None when the host never saw it."""
        ...

    def put(self, guest: FakeGuest) -> None:
        """Store the guest record (callers put back every change they make)."""
        ...

    def all(self) -> list[FakeGuest]:
        """Return every guest record of the host."""
        ...


class GuestStore(Protocol):
    """Gives access to one host's guests at a time."""

    def open(self, host_name: str) -> AbstractContextManager[GuestTable]:
        """Lock the host and return its guests."""
        ...

    def host_names(self) -> list[str]:
        """Return the names of the hosts that have guest records."""
        ...


class _MemoryTable:
    """One host's guests in a dict, with the lock that guards them."""

    __slots__ = ("guests", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.guests: dict[int, FakeGuest] = {}

    def get(self, vm_id: int) -> FakeGuest | None:
        """Return the VM's guest record, or None."""
        return self.guests.get(vm_id)

    def put(self, guest: FakeGuest) -> None:
        """Store the guest record."""
        self.guests[guest.vm_id] = guest

    def all(self) -> list[FakeGuest]:
        """Return every guest record of the host."""
        return list(self.guests.values())


class MemoryStore:
    """Keep every host's guests in memory: O(1) per call whatever the number of hosts."""

    def __init__(self) -> None:
        self._hosts: dict[str, _MemoryTable] = {}
        self._guard = threading.Lock()

    @contextmanager
    def open(self, host_name: str) -> Iterator[GuestTable]:
        """Lock the host and return its guests."""
        table = self._hosts.get(host_name)
        if table is None:
            with self._guard:
                table = self._hosts.setdefault(host_name, _MemoryTable())
        with table.lock:
            yield table

    def host_names(self) -> list[str]:
        """Return the names of the hosts that have guest records."""
        return list(self._hosts)


class _DiskTable:
    """One host's guests as JSON files in its directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, vm_id: int) -> FakeGuest | None:
        """Read the VM's guest file, or None when there is none."""
        try:
            text = (self.directory / f"{vm_id}.json").read_text()
        except FileNotFoundError:
            return None
        return FakeGuest.from_json(json.loads(text))

    def put(self, guest: FakeGuest) -> None:
        """Write the guest file atomically: a crash leaves the old file or the new one."""
        # One fixed temp name is safe: the host's lock is held, and a stale temp file
        # left by a killed process is simply overwritten.
        temp = self.directory / f".{guest.vm_id}.json.tmp"
        temp.write_text(json.dumps(asdict(guest)))
        os.replace(temp, self.directory / f"{guest.vm_id}.json")

    def all(self) -> list[FakeGuest]:
        """Read every guest file of the host."""
        return [
            FakeGuest.from_json(json.loads(p.read_text())) for p in _guest_files(self.directory)
        ]


class DiskStore:
    """Keep every host's guests under ``root/<host name>/`` so they survive a restart."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def open(self, host_name: str) -> Iterator[GuestTable]:
        """Lock the host (threads and processes) and return its guests."""
        directory = self._root / host_directory_name(host_name)
        lock = self._locks.get(host_name)
        if lock is None:
            with self._guard:
                lock = self._locks.setdefault(host_name, threading.Lock())
        with lock:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield _DiskTable(directory)
            finally:
                os.close(fd)  # closing releases the flock

    def host_names(self) -> list[str]:
        """Return the names of the hosts that have guest records."""
        if not self._root.is_dir():
            return []
        return [unquote(p.name) for p in self._root.iterdir() if p.is_dir()]


def host_directory_name(host_name: str) -> str:
    """Return the directory name of a host: its name, with "/" and the like %-escaped."""
    if host_name in ("", ".", ".."):
        raise DriverError(f"fake host name {host_name!r} cannot name a state directory")
    return quote(host_name, safe="")


def read_deploy_counts(state_dir: Path | str) -> dict[int, int]:
    """Sum each VM's deploys over every fake host under `state_dir` (VMs never deployed omitted)."""
    counts: Counter[int] = Counter()
    root = Path(state_dir)
    if not root.is_dir():
        return {}
    for host_dir in root.iterdir():
        if host_dir.is_dir():
            for path in _guest_files(host_dir):
                data = json.loads(path.read_text())
                if data["deploys"]:
                    counts[int(data["vm_id"])] += int(data["deploys"])
    return dict(counts)


def _guest_files(directory: Path) -> list[Path]:
    """List a host directory's guest files (not its lock or temp files)."""
    return [p for p in directory.glob("*.json") if not p.name.startswith(".")]
