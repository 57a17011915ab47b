"""One guest's files under ROOT, its validated spec, its console and its status shape."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from edgecloud.node import attach
from edgecloud.node.protocol import (
    DEPLOY_ID,
    NodeError,
    bad,
    flag,
    integer,
    number,
    optional_text,
    text,
    vm_id_of,
)

DEFAULT_BOOT_TIMEOUT = 60.0
DISK_FORMATS = ("qcow2", "raw")


class GuestDir(NamedTuple):
    """Paths of one guest: ROOT/guests/<deploy_id>/ and ROOT/lxc/<deploy_id>/.

    (A NamedTuple, not a dataclass: importing dataclasses costs every node action ~6 ms.)
    """

    root: Path
    deploy_id: str

    @property
    def path(self) -> Path:
        """Return ROOT/guests/<deploy_id>."""
        return self.root / "guests" / self.deploy_id

    @property
    def spec(self) -> Path:
        """Return the spec the guest was deployed with."""
        return self.path / "spec.json"

    @property
    def console(self) -> Path:
        """Return the console log."""
        return self.path / "console.log"

    @property
    def pidfile(self) -> Path:
        """Return QEMU's pid file (its path also names the process: see proc.alive)."""
        return self.path / "qemu.pid"

    @property
    def qmp(self) -> Path:
        """Return QEMU's QMP socket (bound relative to the guest dir: see qemu.py)."""
        return self.path / "qmp.sock"

    @property
    def memory_state(self) -> Path:
        """Return the saved memory of a saved guest."""
        return self.path / "memory.state"

    @property
    def log(self) -> Path:
        """Return the stderr of the last QEMU or lxc-start run."""
        return self.path / "hypervisor.log"

    @property
    def lxc_path(self) -> Path:
        """Return ROOT/lxc: the `-P` of every lxc-* command."""
        return self.root / "lxc"

    @property
    def container(self) -> Path:
        """Return ROOT/lxc/<deploy_id>: the container's config and rootfs."""
        return self.lxc_path / self.deploy_id

    def exists(self) -> bool:
        """Return whether the host knows the guest at all."""
        return self.path.is_dir() or self.container.is_dir()

    def remove(self, *, keep_disks: bool = False) -> None:
        """Delete the guest's directories (with `keep_disks`, all but its disk files)."""
        if keep_disks and self.path.is_dir() and not self.path.is_symlink():
            for entry in self.path.iterdir():
                if entry.name == "disks.json" or entry.name.startswith("disk."):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            if self.container.is_dir() and not self.container.is_symlink():
                shutil.rmtree(self.container)
            return
        for path in (self.path, self.container):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


@contextlib.contextmanager
def guest_lock(root: Path, deploy_id: str) -> Iterator[None]:
    """Hold the guest's lock (ROOT/cache/locks/<id>.lock) while changing the guest."""
    locks = root / "cache" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{deploy_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def guest_ids(root: Path) -> list[str]:
    """Return the deploy ids of every guest under ROOT, sorted."""
    found: set[str] = set()
    for base in (root / "guests", root / "lxc"):
        with contextlib.suppress(OSError):
            found.update(e.name for e in base.iterdir() if DEPLOY_ID.fullmatch(e.name))
    return sorted(found, key=vm_id_of)


def _path(spec: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = optional_text(spec, key)
    if value is None:
        if required:
            raise bad(f"spec {key!r} is required")
        return None
    if not value.startswith("/") or "\0" in value:
        raise bad(f"spec {key!r} must be an absolute path")
    return value


def _disks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    raw = spec.get("disks") or []
    if not isinstance(raw, list):
        raise bad("spec 'disks' must be a list")
    disks = []
    for index, disk in enumerate(raw):
        if not isinstance(disk, dict):
            raise bad(f"spec disk {index} must be an object")
        fmt = text(disk, "format", "raw")
        if fmt not in DISK_FORMATS:
            raise bad(f"spec disk {index}: format must be qcow2 or raw")
        path = _path(disk, "path", required=True)
        entry: dict[str, Any] = {"path": path, "format": fmt, "readonly": flag(disk, "readonly")}
        if disk.get("disk_id") is not None:
            entry["disk_id"] = integer(disk, "disk_id")
        if disk.get("pci_slot") is not None:  # where a hot-plug put it (see disks_hotplug)
            entry["pci_slot"] = integer(disk, "pci_slot", minimum=1)
        disks.append(entry)
    return disks


def _strings(spec: dict[str, Any], key: str) -> list[str] | None:
    """Return a list of strings without line breaks or NULs (None when absent or empty)."""
    value = spec.get(key)
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad(f"spec {key!r} must be a list of strings")
    if any(c in item for item in value for c in "\n\r\0"):
        raise bad(f"spec {key!r}: an item with a line break or NUL is refused")
    return value


def _app(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the application fields: init (argv), env (KEY=VALUE) and workdir."""
    init, env = _strings(spec, "init"), _strings(spec, "env")
    if init is not None and not init[0]:
        raise bad("spec 'init': the program to run is empty")
    if env is not None and any(not item.partition("=")[0] or "=" not in item for item in env):
        raise bad("spec 'env' items must look like NAME=value")
    workdir = _path(spec, "workdir")
    if workdir is not None and any(c in workdir for c in "\n\r"):
        raise bad("spec 'workdir' must not have a line break")
    return {"init": init, "env": env, "workdir": workdir}


def parse_spec(spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return the spec with every field checked and defaults filled in (plus "kind")."""
    deploy = text(spec, "deploy_id")
    if not DEPLOY_ID.fullmatch(deploy):
        raise bad(f"spec 'deploy_id' must look like one-<vm id>, not {deploy[:40]!r}")
    parsed: dict[str, Any] = {
        "kind": kind,
        "deploy_id": deploy,
        "vm_id": integer(spec, "vm_id", vm_id_of(deploy)),
        "name": text(spec, "name", deploy),
        "vcpu": integer(spec, "vcpu", 1, minimum=1),
        "memory_mb": integer(spec, "memory_mb", 128, minimum=16),
        "kernel": _path(spec, "kernel"),
        "initrd": _path(spec, "initrd"),
        "cmdline": optional_text(spec, "cmdline"),
        "disks": _disks(spec),
        "rootfs": _path(spec, "rootfs", required=kind == "lxc"),
        "privileged": flag(spec, "privileged"),
        "ready_marker": optional_text(spec, "ready_marker"),
        "boot_timeout": number(spec, "boot_timeout", DEFAULT_BOOT_TIMEOUT, minimum=1.0),
        "vnc": flag(spec, "vnc"),
        **_app(spec),
        **attach.parse(spec),
    }
    if kind != "lxc" and parsed["rootfs"] and not (parsed["kernel"] and parsed["initrd"]):
        raise bad(f"a {kind} guest with a rootfs needs spec 'kernel' and 'initrd' to boot it")
    if kind == "microvm" and parsed["kernel"] is None:
        raise bad("a microvm guest needs spec 'kernel'")
    if kind == "kvm" and parsed["kernel"] is None and not parsed["disks"]:
        raise bad("a kvm guest needs spec 'kernel' or 'disks'")
    return parsed


def write_spec(guest: GuestDir, spec: dict[str, Any]) -> None:
    """Write spec.json atomically."""
    guest.path.mkdir(parents=True, exist_ok=True)
    tmp = guest.spec.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    tmp.replace(guest.spec)


def read_spec(guest: GuestDir) -> dict[str, Any] | None:
    """Return the stored spec, or None when there is none (or it is unreadable)."""
    try:
        spec = json.loads(guest.spec.read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def status(
    guest: GuestDir,
    kind: str,
    state: str,
    *,
    privileged: bool = False,
    figures: dict[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return a guest status in the protocol's shape."""
    spec = read_spec(guest) or {}
    vm_id = spec.get("vm_id")
    return {
        "deploy_id": guest.deploy_id,
        "vm_id": vm_id if isinstance(vm_id, int) else vm_id_of(guest.deploy_id),
        "kind": kind,
        "state": state,
        "privileged": privileged,
        "figures": figures or {"cpu_seconds": 0.0, "memory_mb": 0.0},
        **extra,
    }


def console_tail(path: Path, tail_bytes: int) -> str:
    """Return up to the last `tail_bytes` of a console log ("" when there is none)."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - tail_bytes))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def console_size(path: Path) -> int:
    """Return the console log's size now (0 when absent): where new output starts."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def last_lines(path: Path, count: int = 20) -> str:
    """Return the last `count` lines of a log, for error messages."""
    lines = console_tail(path, 16384).splitlines()[-count:]
    return "\n".join(line.rstrip("\r") for line in lines)


def wait_for_text(
    path: Path, needle: str, offset: int, deadline: float, alive: Callable[[], bool]
) -> bool:
    """Wait until `needle` appears in the log past `offset`; False on timeout or death."""
    wanted = needle.encode()
    pause = 0.005  # a booted guest prints it soon: look often first, then back off
    while True:
        try:
            with path.open("rb") as log:
                if log.seek(0, os.SEEK_END) < offset:
                    offset = 0  # the log was truncated: look at all of it
                log.seek(max(0, offset - len(wanted)))
                if wanted in log.read():
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline or not alive():
            return False
        time.sleep(pause)
        pause = min(pause * 1.5, 0.02)


def failure(what: str, *logs: Path) -> NodeError:
    """Return a "failed" error carrying the tail of the given logs."""
    parts = [what]
    for log in logs:
        tail = last_lines(log)
        if tail:
            parts.append(f"--- {log.name} ---\n{tail}")
    return NodeError("failed", "\n".join(parts))
