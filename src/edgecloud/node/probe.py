"""What a host has: CPUs, memory, disk, hypervisors, and whether KVM really runs guests.

`/dev/kvm` existing proves little: under some nested setups a KVM guest runs its first
real-mode instructions and then hangs or dies at the switch to protected mode (that is
where a Linux kernel stops: right after "Probing EDD"). So the KVM probe boots a 64 KiB
firmware of our own that walks real mode -> 32-bit protected mode -> 64-bit long mode
with paging and writes "R", "P", "L" to the ISA debug console; KVM counts only when "L"
arrives within a few seconds. The answer is cached per kernel release and QEMU version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

KVM_PROBE_TIMEOUT = 5.0
SUBID_DEFAULT = (100000, 65536)

# Assembled from this (GNU as, `ld -Ttext 0 --oformat binary`):
#   .set HI, 0xFFFF0000 / .set LO, 0x000F0000      the image through both aliases
#   .code16: cli; out 'R' to 0xe9; cs lgdtl gdtptr; CR0.PE=1; ljmpl $8, HI+start32
#   .code32: ds=es=ss=0x10; out 'P'; ljmp $8, LO+low32; low32: lgdt LO+gdtptr_lo;
#            zero 0x1000-0x3fff; PML4[0]=0x2003, PDPT[0]=0x3003, PD[0]=0x83 (2 MiB);
#            CR4.PAE=1; CR3=0x1000; EFER.LME=1; CR0.PG=1; ljmp $0x18, LO+start64
#   .code64: out 'L'; 1: hlt; jmp 1b
#   gdt: null, code32 0x00CF9A000000FFFF, data 0x00CF92000000FFFF, code64 0x00AF9A000000FFFF
#   gdtptr: limit 31, base HI+gdt; gdtptr_lo: limit 31, base LO+gdt
#   at 0xFFF0 (the reset vector): jmp start16; padded with hlt to 64 KiB
_PROBE_CODE = bytes.fromhex(
    "fab052e6e92e660f0116c0000f20c06683c8010f22c066ea1e00ffff080066b8"
    "10008ed88ec08ed0b050e6e9ea33000f0008000f0115c6000f0031c0bf001000"
    "00b9000c0000f3abc7050010000003200000c7050020000003300000c7050030"
    "0000830000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d00"
    "0100000f300f20c00d000000800f22c0ea97000f001800b04ce6e9f4ebfd6690"
    "0000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf00"
    "1f00a000ffff1f00a0000f00"
)
_RESET_JUMP = bytes.fromhex("e90d00")


def probe_firmware() -> bytes:
    """Return the 64 KiB firmware image of the KVM boot probe."""
    image = bytearray(b"\xf4" * 0x10000)
    image[: len(_PROBE_CODE)] = _PROBE_CODE
    image[0xFFF0 : 0xFFF0 + len(_RESET_JUMP)] = _RESET_JUMP
    return bytes(image)


def _run(argv: list[str], timeout: float = 10.0) -> str:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


@functools.cache
def qemu_version() -> str:
    """Return QEMU's version ("7.2.22"), or "" when QEMU is not installed."""
    if not shutil.which("qemu-system-x86_64"):
        return ""
    found = re.search(r"version (\S+)", _run(["qemu-system-x86_64", "--version"]))
    return found.group(1) if found else ""


@functools.cache
def lxc_version() -> str:
    """Return LXC's version, or "" when LXC is not installed."""
    if not shutil.which("lxc-start"):
        return ""
    return _run(["lxc-start", "--version"]).strip()


def root_subids(name: str) -> tuple[int, int] | None:
    """Return root's first (start, count) range in /etc/subuid or /etc/subgid."""
    try:
        lines = Path(f"/etc/{name}").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in ("root", "0"):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) >= 65536:
            return int(parts[1]), int(parts[2])
    return None


def unprivileged_range() -> tuple[int, int] | None:
    """Return the host id range unprivileged containers map to, or None if there is none.

    With newuidmap installed LXC insists on root's ranges in /etc/subuid and /etc/subgid
    (the same start in both is what we use); without it root writes the maps itself.
    """
    uids, gids = root_subids("subuid"), root_subids("subgid")
    if uids and gids and uids[0] == gids[0]:
        return uids[0], 65536
    if uids is None and gids is None and not shutil.which("newuidmap"):
        return SUBID_DEFAULT
    return None


@functools.cache
def host_tsc_khz() -> int | None:
    """Return the host's TSC rate in kHz (from sysfs, else /proc/cpuinfo), if known."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz").read_text())
    with contextlib.suppress(OSError):
        found = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", Path("/proc/cpuinfo").read_text(), re.M)
        if found:
            return round(float(found.group(1)) * 1000)
    return None


def _meminfo() -> dict[str, int]:
    info = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                info[key] = int(rest.split()[0])
    return info


def kvm_probe(cache: Path, timeout: float = KVM_PROBE_TIMEOUT, accel: str = "kvm") -> bool:
    """Boot the probe firmware and return whether it reached long mode in time."""
    cache.mkdir(parents=True, exist_ok=True)
    firmware = cache / "kvm-probe.bin"
    if not firmware.is_file() or firmware.read_bytes() != probe_firmware():
        firmware.write_bytes(probe_firmware())
    out = cache / f"kvm-probe-{os.getpid()}.out"
    out.unlink(missing_ok=True)
    argv = ["qemu-system-x86_64", "-accel", accel, "-machine", "pc", "-m", "16", "-nodefaults"]
    argv += ["-no-user-config", "-display", "none", "-no-reboot", "-bios", str(firmware)]
    argv += ["-debugcon", f"file:{out}"]
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    deadline = time.monotonic() + timeout
    reached = False
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                reached = b"L" in out.read_bytes()
            if reached or child.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        child.kill()  # a process stuck in KVM may not die at once: never wait long for it
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
        with contextlib.suppress(OSError):
            reached = reached or b"L" in out.read_bytes()
            out.unlink()
    return reached


def kvm_usable(root: Path) -> bool:
    """Return whether KVM boots guests here (probed once per kernel and QEMU version)."""
    if not os.path.exists("/dev/kvm") or not qemu_version():
        return False
    key = f"{os.uname().release}|{qemu_version()}"
    cached = root / "cache" / "kvm-probe.json"
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(cached.read_text())
        if isinstance(found, dict) and found.get("key") == key:
            return bool(found.get("kvm"))
    started = time.monotonic()
    usable = kvm_probe(root / "cache")
    record = {"key": key, "kvm": usable, "seconds": round(time.monotonic() - started, 2)}
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(cached)
    return usable


def probe(root: Path, node_version: str) -> dict[str, Any]:
    """Return the host's capacity, usage and abilities (the `probe` action)."""
    cpus = os.cpu_count() or 1
    mem = _meminfo()
    total_kb = mem.get("MemTotal", 0)
    available_kb = mem.get("MemAvailable", mem.get("MemFree", 0))
    disk_at = root if root.exists() else Path("/")
    disk = os.statvfs(disk_at)
    qemu, lxc = qemu_version(), lxc_version()
    hypervisors = ["kvm", "microvm"] if qemu else []
    if lxc:
        hypervisors.append("lxc")
    return {
        "hostname": socket.gethostname(),
        "cpu": cpus,
        "memory_mb": total_kb // 1024,
        "used_cpu": round(min(float(cpus), os.getloadavg()[0]), 2),
        "used_memory_mb": (total_kb - available_kb) // 1024,
        "total_disk_mb": disk.f_blocks * disk.f_frsize // 2**20,
        "free_disk_mb": disk.f_bavail * disk.f_frsize // 2**20,
        "hypervisors": sorted(hypervisors),
        "kvm": bool(qemu) and kvm_usable(root),
        "unprivileged_lxc": bool(lxc) and unprivileged_range() is not None,
        "qemu_version": qemu,
        "lxc_version": lxc,
        "version": node_version,
    }
