"""The QEMU command line of a guest: a pure function of its spec, files and accelerator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

QEMU = "qemu-system-x86_64"
QMP_SOCKET = "qmp.sock"  # relative to the guest directory, QEMU's working directory
VNC_SOCKET = "vnc.sock"


def opt(value: str) -> str:
    """Escape a value for QEMU's key=value,... option syntax (a comma is doubled)."""
    return value.replace(",", ",,")


def _disk_args(kind: str, disks: list[dict[str, Any]]) -> list[str]:
    """Return the drives: each has the id ``disk<disk_id>`` (its index when the spec's disk
    has no disk_id), the name QMP addresses it by (e.g. for internal snapshots).

    A kvm disk whose PCI slot was recorded (``pci_slot``, after a disk hotplug: see
    disks_hotplug.py) gets its device ``disk<disk_id>-dev`` back in that slot, so a
    restore rebuilds the machine that was saved.
    """
    args: list[str] = []
    for index, disk in enumerate(disks):
        disk_id = disk.get("disk_id")
        name = f"disk{disk_id if isinstance(disk_id, int) else index}"
        drive = f"id={name},file={opt(disk['path'])},format={disk['format']}"
        if disk.get("readonly"):
            drive += ",readonly=on"
        slot = disk.get("pci_slot")
        if kind == "microvm":  # no PCI: virtio over MMIO
            args += ["-drive", f"{drive},if=none"]
            args += ["-device", f"virtio-blk-device,drive={name}"]
        elif isinstance(slot, int) and not isinstance(slot, bool):
            args += ["-drive", f"{drive},if=none"]
            args += ["-device", f"virtio-blk-pci,drive={name},id={name}-dev,addr={slot:#x}"]
        else:
            args += ["-drive", f"{drive},if=virtio"]
    return args


def microvm_cmdline(cmdline: str, tsc_khz: int | None) -> str:
    """Return a microvm kernel command line with what microvm needs under TCG.

    microvm has neither HPET nor an ACPI PM timer: when the guest's fast TSC calibration
    against the PIT fails (it does on a loaded host, TCG being slow), Linux finds no
    other reference and hangs right after "Marking TSC unstable". Giving it the TSC
    rate (`tsc_early_khz`, the host's: TCG's TSC is the host's) skips the calibration.
    Its serial console shows output only with `earlyprintk=ttyS0`.
    """
    words = cmdline.split()
    if not any(word.startswith("earlyprintk=") for word in words):
        words.append("earlyprintk=ttyS0")
    if tsc_khz and not any(word.startswith("tsc_early_khz=") for word in words):
        words.append(f"tsc_early_khz={tsc_khz}")
    return " ".join(words)


def _boot_args(spec: dict[str, Any], accel: str, tsc_khz: int | None) -> list[str]:
    if not spec.get("kernel"):
        return []
    args = ["-kernel", spec["kernel"]]
    if spec.get("initrd"):
        args += ["-initrd", spec["initrd"]]
    cmdline = spec.get("cmdline") or ""
    if spec["kind"] == "microvm":
        cmdline = microvm_cmdline(cmdline, tsc_khz if accel == "tcg" else None)
    if cmdline:
        args += ["-append", cmdline]
    return args


def qemu_argv(
    spec: dict[str, Any], guest_dir: Path, accel: str, tsc_khz: int | None = None
) -> list[str]:
    """Return the argv that starts the guest daemonized, with QMP and a console file.

    `spec` is a parsed spec (guest.parse_spec); `accel` is "kvm" or "tcg"; `tsc_khz` is
    the host's TSC rate (see microvm_cmdline). The pid file's absolute path is in the
    argv on purpose: it tells our QEMU from any other.
    """
    kind = spec["kind"]
    console = guest_dir / "console.log"
    argv = [
        QEMU,
        "-name",
        f"guest={opt(spec['deploy_id'])}",
        "-machine",
        "microvm" if kind == "microvm" else "pc",
        "-accel",
        accel,
        "-m",
        str(spec["memory_mb"]),
        "-smp",
        str(spec["vcpu"]),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-chardev",
        f"file,id=console,path={opt(str(console))},append=on",
        "-serial",
        "chardev:console",
        "-qmp",
        f"unix:{QMP_SOCKET},server=on,wait=off",
        "-pidfile",
        str(guest_dir / "qemu.pid"),
        "-daemonize",
    ]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    argv += _boot_args(spec, accel, tsc_khz)
    argv += _disk_args(kind, spec.get("disks") or [])
    if spec.get("vnc") and kind != "microvm":
        argv += ["-vga", "std", "-vnc", f"unix:{VNC_SOCKET}"]
    return argv
