"""The tiny images boot for real: the VM under QEMU (pc and microvm, TCG), the rootfs in LXC.

Each guest is started by hand here (no node code, no front-end): what is tested is the
images, and the kernel command lines they come with.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.images import Tiny, ensure_tiny
from edgecloud.node.probe import host_tsc_khz
from edgecloud.node.qemu_argv import microvm_cmdline

pytestmark = pytest.mark.host

BOOT_TIMEOUT = 60.0
POWERDOWN_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    """The tiny images (built once per machine, then cached)."""
    return ensure_tiny()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever still runs at the end is killed by its PID."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class Qmp:
    """A minimal QMP client: one command at a time, events skipped."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX)
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rwb")
        assert "QMP" in json.loads(self.file.readline())
        self.execute("qmp_capabilities")

    def execute(self, command: str) -> Any:
        """Run a command and return its "return" value."""
        self.file.write(json.dumps({"execute": command}).encode() + b"\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError(f"QMP closed during {command}")
            answer = json.loads(line)
            if "error" in answer:
                raise RuntimeError(f"QMP {command}: {answer['error']}")
            if "return" in answer:
                return answer["return"]

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()


def wait_for_text(path: Path, text: str, *, count: int = 1, timeout: float, alive: Any) -> float:
    """Wait until text appears `count` times in a file; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return time.monotonic() - start
        assert alive(), f"exited before {text!r}:\n{tail(path)}"
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} (x{count}) after {timeout}s:\n{tail(path)}")


def tail(path: Path) -> str:
    """Return the end of a log file, for failure messages."""
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no file)"


def start_vm(
    tiny: Tiny, machine: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """Start QEMU (TCG) on the tiny kernel+initrd; return it, its serial log and QMP socket."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    serial, qmp = tmp_path / "serial.log", tmp_path / "qmp.sock"
    cmdline = tiny.cmdline
    if machine == "microvm":  # what the node adds under TCG: the host's TSC rate
        cmdline = microvm_cmdline(tiny.microvm_cmdline, host_tsc_khz())
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-M",
        machine,
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-kernel",
        str(tiny.kernel),
        "-initrd",
        str(tiny.initrd),
        "-append",
        f"{cmdline} hostname=tiny-{machine}",
        "-serial",
        f"file:{serial}",
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
    ]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    processes.append(process)
    return process, serial, qmp


@pytest.mark.parametrize(("machine", "reset"), [("pc", True), ("microvm", False)])
def test_tiny_vm_boots_and_powers_off_on_acpi_request(
    tiny: Tiny,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    machine: str,
    reset: bool,
) -> None:
    process, serial, qmp_path = start_vm(tiny, machine, tmp_path, processes)

    def alive() -> bool:
        return process.poll() is None

    booted = wait_for_text(serial, tiny.marker, timeout=BOOT_TIMEOUT, alive=alive)
    qmp = Qmp(qmp_path)
    try:
        if reset:
            qmp.execute("system_reset")
            wait_for_text(serial, tiny.marker, count=2, timeout=BOOT_TIMEOUT, alive=alive)
        asked = time.monotonic()
        qmp.execute("system_powerdown")
        assert process.wait(timeout=POWERDOWN_TIMEOUT) == 0, tail(serial)
    finally:
        qmp.close()
    log = serial.read_text(errors="replace")
    assert f"tiny-{machine}:/#" in log  # hostname= applied, shell on the console
    assert "insmod" not in log  # every module loaded
    print(f"{machine}: marker after {booted:.1f}s, off {time.monotonic() - asked:.1f}s later")


def test_tiny_rootfs_runs_as_lxc_system_container(tiny: Tiny, tmp_path: Path) -> None:
    if shutil.which("lxc-start") is None:
        pytest.skip("lxc is not installed")
    lxcpath, name = tmp_path / "lxc", f"tiny-{os.getpid()}"
    shutil.copytree(tiny.rootfs, lxcpath / name / "rootfs", symlinks=True)
    console = lxcpath / name / "console.log"
    (lxcpath / name / "config").write_text(
        f"lxc.uts.name = {name}\n"
        f"lxc.rootfs.path = dir:{lxcpath / name / 'rootfs'}\n"
        "lxc.net.0.type = empty\n"
        "lxc.apparmor.profile = unconfined\n"
        "lxc.cgroup.relative = 1\n"
        "lxc.signal.halt = SIGUSR2\n"
        "lxc.autodev = 1\n"
        "lxc.tty.max = 0\n"
        "lxc.mount.auto = proc:mixed sys:ro cgroup:mixed\n"
        f"lxc.console.logfile = {console}\n"
    )
    where = ["-P", str(lxcpath), "-n", name]
    pid: int | None = None
    started = time.monotonic()
    try:
        subprocess.run(["lxc-start", *where], check=True, capture_output=True, timeout=30)
        info = subprocess.run(
            ["lxc-info", *where, "-p", "-H"], capture_output=True, text=True, timeout=10
        )
        pid = int(info.stdout.strip()) if info.stdout.strip().isdigit() else None
        wait_for_text(console, tiny.marker, timeout=10, alive=lambda: True)
        ready = time.monotonic() - started
        stop = subprocess.run(["lxc-stop", *where, "-t", "10"], capture_output=True, timeout=30)
        assert stop.returncode == 0, stop.stderr
        state = subprocess.run(["lxc-info", *where, "-s", "-H"], capture_output=True, text=True)
        assert state.stdout.strip() == "STOPPED"
        print(f"lxc: marker {ready:.2f}s after lxc-start")
    finally:
        subprocess.run(["lxc-stop", *where, "-k"], capture_output=True, timeout=30)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
