"""lxc guests: system containers run with the lxc-* tools, `-P ROOT/lxc`.

Unprivileged by default when the host has an id range for root (probe.unprivileged_range);
the rootfs is then copied with its owners shifted into that range. busybox init is the
usual init here: it halts on SIGUSR2 (USR1 halt, USR2 poweroff, TERM reboot) and ignores
SIGPWR, and it writes to /dev/console only when $CONSOLE says so (with `lxc-start -d` its
stdio is /dev/null) — hence `lxc.environment = CONSOLE=/dev/console`.

An application container (spec "init", e.g. an OCI image's entrypoint and cmd) runs that
command as its init instead: `lxc.init.cmd` (LXC splits it at spaces, so a command with
an empty argument or one holding a space or tab goes to lxc-start after `--` instead),
`lxc.init.cwd` (spec "workdir") and one `lxc.environment` per spec "env" item. It stops
on SIGTERM, as applications expect, and reboots by being stopped and started again. It
has started once lxc-info says RUNNING (and its ready marker, when the spec gives one, is
on the console): an application image may have no /bin/true to run inside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from edgecloud.node import attach
from edgecloud.node.guest import (
    GuestDir,
    console_size,
    failure,
    parse_spec,
    read_spec,
    status,
    wait_for_text,
    write_spec,
)
from edgecloud.node.probe import unprivileged_range
from edgecloud.node.protocol import NodeError, bad
from edgecloud.node.rootfs import copy_tree

STATES = {"RUNNING": "running", "FROZEN": "paused", "FREEZING": "paused", "THAWED": "running"}
CPU_PERIOD_US = 100000


def cgroup_versions(mountinfo: str | None = None) -> dict[str, int]:
    """Return which cgroup version manages the memory and cpu controllers (1 or 2)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            mountinfo = ""
    found: dict[str, int] = {}
    unified: list[str] = []
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts, tail = fields.split(), rest.split()
        if len(parts) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup":
            for controller in ("memory", "cpu"):
                if controller in tail[2].split(","):
                    found[controller] = 1
        elif tail[0] == "cgroup2":
            unified.append(parts[4])
    for mount in unified:
        with contextlib.suppress(OSError):
            for controller in Path(mount, "cgroup.controllers").read_text().split():
                if controller in ("memory", "cpu"):
                    found.setdefault(controller, 2)
    return found


def _limits(spec: dict[str, Any], versions: dict[str, int]) -> list[tuple[str, str]]:
    memory = str(spec["memory_mb"] * 2**20)
    quota = spec["vcpu"] * CPU_PERIOD_US
    keys: list[tuple[str, str]] = []
    if versions.get("memory") == 1:
        keys.append(("lxc.cgroup.memory.limit_in_bytes", memory))
    elif versions.get("memory") == 2:
        keys.append(("lxc.cgroup2.memory.max", memory))
    if versions.get("cpu") == 1:
        keys.append(("lxc.cgroup.cpu.cfs_period_us", str(CPU_PERIOD_US)))
        keys.append(("lxc.cgroup.cpu.cfs_quota_us", str(quota)))
    elif versions.get("cpu") == 2:
        keys.append(("lxc.cgroup2.cpu.max", f"{quota} {CPU_PERIOD_US}"))
    return keys


def init_in_config(spec: dict[str, Any]) -> bool:
    """Return whether the spec's init command can be written as lxc.init.cmd."""
    return all(arg and not any(c in arg for c in " \t") for arg in spec.get("init") or [])


def _init_keys(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the keys that start the container's init: busybox init or an application."""
    if not spec.get("init"):
        return [
            ("lxc.signal.halt", "SIGUSR2"),
            ("lxc.signal.reboot", "SIGTERM"),
            ("lxc.environment", "CONSOLE=/dev/console"),
        ]
    keys = [("lxc.signal.halt", "SIGTERM")]
    if init_in_config(spec):
        keys.append(("lxc.init.cmd", " ".join(spec["init"])))
    keys.append(("lxc.init.cwd", spec.get("workdir") or "/"))
    keys += [("lxc.environment", item) for item in spec.get("env") or []]
    return keys


def render_config(
    spec: dict[str, Any], guest: GuestDir, idmap: int | None, versions: dict[str, int]
) -> str:
    """Return the container's LXC config; `idmap` is the host uid/gid of its root, if any."""
    keys = [
        ("lxc.uts.name", spec["deploy_id"]),
        ("lxc.rootfs.path", f"dir:{guest.container / 'rootfs'}"),
        ("lxc.cgroup.relative", "1"),
        ("lxc.apparmor.profile", "unconfined"),
        *_init_keys(spec),
        ("lxc.console.logfile", str(guest.console)),
        *attach.lxc_keys({"nics": [], "context": {}, **spec}),
        ("lxc.mount.auto", "proc:mixed sys:mixed cgroup:mixed"),
        ("lxc.autodev", "1"),
        ("lxc.pty.max", "16"),
        ("lxc.cap.drop", "mac_admin mac_override sys_time sys_module sys_rawio"),
    ]
    if idmap is not None:
        keys += [("lxc.idmap", f"u 0 {idmap} 65536"), ("lxc.idmap", f"g 0 {idmap} 65536")]
    keys += _limits(spec, versions)
    for key, value in keys:
        if any(c in value for c in "\n\r\0"):
            raise bad(f"{key}: a path or name with a line break cannot go into an LXC config")
    return "".join(f"{key} = {value}\n" for key, value in keys)


def _lxc(action: str, guest: GuestDir, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run lxc-<action> on the guest's container; return (exit status, output)."""
    argv = [f"lxc-{action}", "-n", guest.deploy_id, "-P", str(guest.lxc_path), *args]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"lxc-{action} timed out after {timeout:g} s"
    except OSError as exc:
        raise NodeError("failed", f"cannot run lxc-{action}: {exc}") from exc
    return done.returncode, (done.stdout + done.stderr).strip()


def _info(guest: GuestDir) -> dict[str, str]:
    """Return lxc-info's fields (State, PID, CPU use, Memory use; raw numbers)."""
    if not (guest.container / "config").is_file():
        return {}
    code, out = _lxc("info", guest, "-s", "-p", "-S", "-H", timeout=10)
    if code != 0:
        return {}
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _state(guest: GuestDir) -> str:
    return _info(guest).get("State", "STOPPED")


def init_pid(guest: GuestDir) -> int | None:
    """Return the PID of a running container's init (None when it does not run)."""
    info = _info(guest)
    if info.get("State") != "RUNNING":
        return None
    return int(info.get("PID", "0") or 0) or None


def _check_traversable(path: Path) -> None:
    """Fail unless the mapped root can reach `path` (LXC needs x on every parent)."""
    for parent in path.parents:
        with contextlib.suppress(OSError):
            if not os.stat(parent).st_mode & 0o001:
                raise NodeError(
                    "failed",
                    f"{parent} is not searchable by others (mode o+x): an unprivileged "
                    "container's root cannot reach its rootfs through it",
                )


def _prepare(guest: GuestDir, spec: dict[str, Any]) -> None:
    """Write the config and put the rootfs in place (copied once, owners shifted)."""
    start = None if spec["privileged"] else spec["uid_shift"]
    guest.container.mkdir(parents=True, exist_ok=True)
    rootfs = guest.container / "rootfs"
    stored = read_spec(guest) or {}
    if rootfs.exists() and stored.get("uid_shift", 0) != spec["uid_shift"]:
        shutil.rmtree(rootfs)  # copied for another id range: copy again
    if not rootfs.exists():
        partial = guest.container / "rootfs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            copy_tree(Path(spec["rootfs"]), partial, spec["uid_shift"])
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise NodeError("failed", f"cannot copy rootfs {spec['rootfs']}: {exc}") from exc
        partial.rename(rootfs)
    if start is not None:
        for path in (guest.root, guest.lxc_path, guest.container):
            path.chmod(path.stat().st_mode | 0o001)
        _check_traversable(rootfs)
    write_config(guest, spec)


def write_config(guest: GuestDir, spec: dict[str, Any]) -> None:
    """Write the container's LXC config from its spec (also after a NIC hotplug)."""
    idmap = None if spec["privileged"] else spec["uid_shift"]
    config = render_config(spec, guest, idmap, cgroup_versions())
    (guest.container / "config").write_text(config)


def _start(guest: GuestDir, spec: dict[str, Any]) -> int:
    """Start the container and wait until it has really started; return its init PID."""
    offset = console_size(guest.console)
    deadline = time.monotonic() + spec["boot_timeout"]
    app = bool(spec.get("init"))
    command = [] if init_in_config(spec) else ["--", *spec["init"]]
    code, out = _lxc(
        "start", guest, "-d", "-o", str(guest.log), "-l", "ERROR", *command, timeout=60
    )
    if code != 0:
        raise failure(f"lxc-start failed: {out}", guest.log, guest.console)
    # lxc-start -d returns once the container runs: read its init's PID, wait for the
    # ready marker (a file read every few ms), then prove it with one exec inside.
    info = _info(guest)
    while info.get("State") != "RUNNING":
        if info.get("State") in (None, "STOPPED") or time.monotonic() >= deadline:
            _lxc("stop", guest, "-k")
            raise failure("the container did not start", guest.console, guest.log)
        time.sleep(0.01)
        info = _info(guest)
    init = int(info.get("PID", "0") or 0)
    marker = spec.get("ready_marker")
    if marker:
        alive = lambda: init > 0 and os.path.exists(f"/proc/{init}")  # noqa: E731
        if not wait_for_text(guest.console, marker, offset, deadline, alive):
            _lxc("stop", guest, "-k")
            raise failure(f"no {marker!r} on the console in time", guest.console, guest.log)
    while not app and _lxc("attach", guest, "--", "/bin/true")[0] != 0:
        if _state(guest) != "RUNNING" or time.monotonic() >= deadline:
            _lxc("stop", guest, "-k")
            raise failure("the container did not start", guest.console, guest.log)
        time.sleep(0.01)
    return init


def _deployed(guest: GuestDir, pid: int, privileged: bool) -> dict[str, Any]:
    return {
        "deploy_id": guest.deploy_id,
        "state": "running",
        "accel": "none",
        "privileged": privileged,
        "pid": pid,
    }


def deploy(root: Path, raw_spec: dict[str, Any]) -> dict[str, Any]:
    """Create the container if needed, start it and wait until it answers."""
    spec = parse_spec(raw_spec, "lxc")
    guest = GuestDir(root, spec["deploy_id"])
    info = _info(guest)
    if info.get("State") == "RUNNING":
        stored = read_spec(guest) or {}
        return _deployed(guest, int(info.get("PID", "0") or 0), bool(stored.get("privileged")))
    subids = None if spec["privileged"] else unprivileged_range()
    spec["privileged"] = subids is None
    spec["uid_shift"] = subids[0] if subids else 0
    spec["accel"] = "none"
    _prepare(guest, spec)
    attach.write_context_files(spec, guest.container / "rootfs")
    write_spec(guest, spec)
    with attach.undone_on_failure(root, spec):
        attach.up(root, spec, guest.path)
        pid = _start(guest, spec)
        attach.plug_veths(root, spec)
        attach.post(root, spec)
    return _deployed(guest, pid, spec["privileged"])


def shutdown(root: Path, deploy_id: str, hard: bool, timeout: float) -> dict[str, Any]:
    """Halt the container (its halt signal, killed after `timeout`); missing is stopped."""
    guest = GuestDir(root, deploy_id)
    if _state(guest) == "STOPPED":
        return {}
    args = ["-k"] if hard else ["-t", str(max(1, round(timeout)))]
    code, out = _lxc("stop", guest, *args, timeout=timeout + 30)
    if code not in (0, 2) and _state(guest) != "STOPPED":  # 2: it was not running
        raise NodeError("failed", f"lxc-stop failed: {out}")
    return {}


def reboot(root: Path, deploy_id: str, hard: bool) -> dict[str, Any]:
    """Reboot the container: its reboot signal, or kill and start again when hard."""
    guest = GuestDir(root, deploy_id)
    spec = read_spec(guest)
    if spec is None or not guest.container.is_dir():
        raise NodeError("missing", f"{deploy_id} is not on this host")
    if _state(guest) != "RUNNING":
        raise NodeError("failed", f"{deploy_id} is not running")
    if hard or spec.get("init"):  # an application has no reboot signal: start it again
        _lxc("stop", guest, "-k")
        _start(guest, spec)
        return {}
    code, out = _lxc("stop", guest, "-r", timeout=60)
    if code != 0:
        raise NodeError("failed", f"lxc-stop -r failed: {out}")
    return {}


def save(root: Path, deploy_id: str) -> dict[str, Any]:
    """Refuse: containers have no memory image here."""
    raise NodeError("failed", "lxc containers cannot save memory state (no CRIU)")


def restore(root: Path, deploy_id: str) -> dict[str, Any]:
    """Refuse: containers have no memory image here."""
    raise NodeError("failed", "lxc containers cannot save memory state (no CRIU)")


def cleanup(root: Path, deploy_id: str, keep_disks: bool = False) -> dict[str, Any]:
    """Kill the container if it runs and remove its files."""
    guest = GuestDir(root, deploy_id)
    if _state(guest) != "STOPPED":
        _lxc("stop", guest, "-k")
    spec = read_spec(guest)
    if spec is not None:
        attach.down(root, spec)
    guest.remove(keep_disks=keep_disks)
    return {}


def poll(root: Path, deploy_id: str) -> dict[str, Any]:
    """Return the container's status, with its cgroup's CPU time and memory."""
    guest = GuestDir(root, deploy_id)
    if not guest.exists():
        return status(guest, "lxc", "missing")
    privileged = bool((read_spec(guest) or {}).get("privileged"))
    info = _info(guest)
    state = STATES.get(info.get("State", "STOPPED"), "stopped")
    figures = {"cpu_seconds": 0.0, "memory_mb": 0.0}
    if state != "stopped":
        with contextlib.suppress(ValueError):
            figures["cpu_seconds"] = round(int(info.get("CPU use", "0")) / 1e9, 2)
        with contextlib.suppress(ValueError):
            figures["memory_mb"] = round(int(info.get("Memory use", "0")) / 2**20, 1)
    return status(guest, "lxc", state, privileged=privileged, figures=figures)
