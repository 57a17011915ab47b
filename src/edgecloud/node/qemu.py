"""kvm and microvm guests: QEMU started daemonized, driven over QMP.

QEMU runs with the guest directory as its working directory (so its QMP socket can be a
short relative path), its stdio on /dev/null and a log file, in a session of its own: the
node action returns while the guest runs on, and nothing holds the action's stdout open.
Memory is saved and restored through a file descriptor (QMP `getfd` + `migrate fd:` out,
`-incoming fd:N` in), so no shell command is built from a path. QEMU 7.2 has no `file:`
migration URI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient, QMPError

from edgecloud.node import appfs, attach, proc, qmp
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
from edgecloud.node.probe import host_tsc_khz, kvm_usable
from edgecloud.node.protocol import NodeError
from edgecloud.node.qemu_argv import VNC_SOCKET, qemu_argv

QUIT_WAIT = 5.0
SAVE_TIMEOUT = 600.0
SAVE_BANDWIDTH = 8 * 2**30  # bytes/s: the default (32 MiB/s) makes a save crawl
SAVE_FD_NAME = "edgecloud-save"


def _needle(guest: GuestDir) -> str:
    return str(guest.pidfile)


def _running_pid(guest: GuestDir) -> int | None:
    pid = proc.read_pid(guest.pidfile)
    return pid if proc.alive(pid, _needle(guest)) else None


def _clear_runtime(guest: GuestDir) -> None:
    for path in (guest.qmp, guest.pidfile, guest.path / VNC_SOCKET):
        with contextlib.suppress(OSError):
            path.unlink()


def _start(
    guest: GuestDir, spec: dict[str, Any], extra: list[str], pass_fds: tuple[int, ...] = ()
) -> int:
    """Start QEMU daemonized and return its PID once it runs."""
    _clear_runtime(guest)
    argv = qemu_argv(spec, guest.path, spec.get("accel", "tcg"), host_tsc_khz())
    argv += attach.qemu_args(_with_network(spec), guest.path) + extra
    with guest.log.open("wb") as log:
        try:
            done = subprocess.run(
                argv,
                cwd=guest.path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=pass_fds,
                start_new_session=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise failure(f"cannot start QEMU: {exc}", guest.log) from exc
    pid = proc.read_pid(guest.pidfile)
    if done.returncode != 0 or not proc.alive(pid, _needle(guest)):
        _clear_runtime(guest)
        raise failure(f"QEMU did not start (exit status {done.returncode})", guest.log)
    assert pid is not None
    return pid


def _quit(guest: GuestDir, pid: int) -> None:
    """End QEMU: QMP quit, then SIGKILL if it is still there."""
    with contextlib.suppress(NodeError):
        qmp.execute(guest.path, "quit")
    if not proc.wait_gone(pid, _needle(guest), QUIT_WAIT):
        proc.kill(pid, _needle(guest))
    _clear_runtime(guest)


def _abort_start(guest: GuestDir, pid: int, why: str) -> NodeError:
    died = not proc.alive(pid, _needle(guest))
    _quit(guest, pid)
    return failure(
        f"guest did not start: {'QEMU exited' if died else why}", guest.console, guest.log
    )


def _wait_running(guest: GuestDir, pid: int, deadline: float) -> bool:
    while proc.alive(pid, _needle(guest)):
        if qmp.run_status(guest.path) == "running":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return False


def _deployed(guest: GuestDir, pid: int) -> dict[str, Any]:
    spec = read_spec(guest) or {}
    accel = spec.get("accel", "tcg")
    return {
        "deploy_id": guest.deploy_id,
        "state": "running",
        "accel": accel,
        "privileged": False,
        "pid": pid,
    }


def deploy(root: Path, kind: str, raw_spec: dict[str, Any]) -> dict[str, Any]:
    """Start the guest and wait until it has booted (ready marker, else QMP "running")."""
    spec = parse_spec(raw_spec, kind)
    guest = GuestDir(root, spec["deploy_id"])
    pid = _running_pid(guest)
    if pid is not None:
        return _deployed(guest, pid)
    if guest.memory_state.exists():
        raise NodeError("failed", f"{guest.deploy_id} has saved memory: restore or clean it up")
    spec["accel"] = "kvm" if kvm_usable(root) else "tcg"
    if spec["rootfs"]:
        try:
            spec = appfs.with_app(guest.path, spec)
        except OSError as exc:
            raise NodeError("failed", f"cannot pack rootfs {spec['rootfs']}: {exc}") from exc
    write_spec(guest, spec)
    with attach.undone_on_failure(root, spec):
        attach.up(root, spec, guest.path)
        pid = _boot(guest, spec)
        attach.post(root, spec)
    return _deployed(guest, pid)


def _boot(guest: GuestDir, spec: dict[str, Any]) -> int:
    """Start QEMU and wait until the guest booted (ready marker, else QMP "running")."""
    offset = console_size(guest.console)
    started = time.monotonic()
    pid = _start(guest, spec, [])
    deadline = started + spec["boot_timeout"]
    marker = spec.get("ready_marker")
    if marker:
        alive = lambda: proc.alive(pid, _needle(guest))  # noqa: E731
        if not wait_for_text(guest.console, marker, offset, deadline, alive):
            raise _abort_start(
                guest, pid, f"no {marker!r} on the console in {spec['boot_timeout']:g} s"
            )
    elif not _wait_running(guest, pid, deadline):
        raise _abort_start(guest, pid, "QMP never reported it running")
    return pid


def _with_network(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the spec with its network fields (a spec.json from before them has none)."""
    return {"nics": [], "network": {}, "context": {}, **spec}


def shutdown(root: Path, deploy_id: str, hard: bool, timeout: float) -> dict[str, Any]:
    """Power the guest off (ACPI, then quit after `timeout`); a missing guest is stopped."""
    guest = GuestDir(root, deploy_id)
    pid = _running_pid(guest)
    if pid is None:
        _clear_runtime(guest)
        return {}
    if not hard:
        with contextlib.suppress(NodeError):
            qmp.execute(guest.path, "system_powerdown")
        if proc.wait_gone(pid, _needle(guest), timeout):
            _clear_runtime(guest)
            return {}
    _quit(guest, pid)
    return {}


def _require_running(guest: GuestDir) -> int:
    if not guest.path.is_dir():
        raise NodeError("missing", f"{guest.deploy_id} is not on this host")
    pid = _running_pid(guest)
    if pid is None:
        raise NodeError("failed", f"{guest.deploy_id} is not running")
    return pid


def reboot(root: Path, deploy_id: str, hard: bool) -> dict[str, Any]:
    """Reset the guest (soft and hard alike: a reset is what a TCG busybox guest honours)."""
    guest = GuestDir(root, deploy_id)
    _require_running(guest)
    qmp.execute(guest.path, "system_reset")
    return {}


async def _save_steps(client: QMPClient, target: int) -> None:
    await client.execute("stop")
    await client.execute("migrate-set-parameters", {"max-bandwidth": SAVE_BANDWIDTH})
    client.send_fd_scm(target)
    await client.execute("getfd", {"fdname": SAVE_FD_NAME})
    await client.execute("migrate", {"uri": f"fd:{SAVE_FD_NAME}"})
    while True:
        found = await client.execute("query-migrate")
        state = found.get("status") if isinstance(found, dict) else None
        if state == "completed":
            break
        if state in ("failed", "cancelled", None):
            detail = found.get("error-desc", "") if isinstance(found, dict) else ""
            raise NodeError("failed", f"saving memory failed: {state} {detail}".strip())
        await asyncio.sleep(0.05)
    with contextlib.suppress(QMPError, EOFError, OSError):
        await client.execute("quit")


def save(root: Path, deploy_id: str) -> dict[str, Any]:
    """Write the guest's memory to memory.state and stop it."""
    guest = GuestDir(root, deploy_id)
    if guest.path.is_dir() and _running_pid(guest) is None and guest.memory_state.exists():
        return {}  # saved already
    pid = _require_running(guest)
    partial = guest.memory_state.with_suffix(".partial")
    target = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        qmp.session(guest.path, lambda client: _save_steps(client, target), SAVE_TIMEOUT)
    except NodeError:
        with contextlib.suppress(NodeError):
            qmp.execute(guest.path, "cont")  # keep the guest running when the save failed
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(target)
    if not proc.wait_gone(pid, _needle(guest), QUIT_WAIT):
        proc.kill(pid, _needle(guest))
    partial.replace(guest.memory_state)
    _clear_runtime(guest)
    return {}


def _wait_restored(guest: GuestDir, pid: int, deadline: float) -> bool:
    """Wait for the incoming migration to finish, then resume the guest."""
    while proc.alive(pid, _needle(guest)) and time.monotonic() < deadline:
        state = qmp.run_status(guest.path)
        if state == "running":
            return True
        if state in ("paused", "postmigrate", "prelaunch"):
            with contextlib.suppress(NodeError):
                qmp.execute(guest.path, "cont")
            continue
        time.sleep(0.1)
    return False


def restore(root: Path, deploy_id: str) -> dict[str, Any]:
    """Start the guest again from memory.state and its spec.json."""
    guest = GuestDir(root, deploy_id)
    if not guest.path.is_dir():
        raise NodeError("missing", f"{deploy_id} is not on this host")
    if _running_pid(guest) is not None:
        return {"state": "running"}
    spec = read_spec(guest)
    if spec is None or not guest.memory_state.exists():
        raise NodeError("failed", f"{deploy_id} has no saved memory state to restore")
    spec = _with_network(spec)
    attach.up(root, spec, guest.path)  # taps again: the guest may come back on a new host
    source = os.open(guest.memory_state, os.O_RDONLY)
    try:
        pid = _start(guest, spec, ["-incoming", f"fd:{source}"], pass_fds=(source,))
    finally:
        os.close(source)
    deadline = time.monotonic() + float(spec.get("boot_timeout", 60))
    if not _wait_restored(guest, pid, deadline):
        raise _abort_start(guest, pid, "the saved memory did not load")
    guest.memory_state.unlink(missing_ok=True)
    attach.post(root, spec)
    return {"state": "running"}


def cleanup(root: Path, deploy_id: str, keep_disks: bool = False) -> dict[str, Any]:
    """Kill QEMU if it is still there and remove the guest's files."""
    guest = GuestDir(root, deploy_id)
    pid = _running_pid(guest)
    if pid is not None:
        proc.kill(pid, _needle(guest))
    spec = read_spec(guest)
    if spec is not None:
        attach.down(root, spec)
    guest.remove(keep_disks=keep_disks)
    return {}


def poll(root: Path, kind: str, deploy_id: str) -> dict[str, Any]:
    """Return the guest's status."""
    guest = GuestDir(root, deploy_id)
    if not guest.path.is_dir():
        return status(guest, kind, "missing")
    accel = (read_spec(guest) or {}).get("accel", "tcg")
    pid = _running_pid(guest)
    if pid is None:
        state = "saved" if guest.memory_state.exists() else "stopped"
        return status(guest, kind, state, accel=accel)
    run = qmp.run_status(guest.path)
    state = "running" if run in (None, "running") else "stopped" if run == "shutdown" else "paused"
    return status(guest, kind, state, figures=proc.figures(pid), accel=accel)
