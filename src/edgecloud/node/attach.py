"""A guest's NICs and context around its life on the host.

Before the guest starts: the vnets' devices (net.host.pre), one tap per NIC for QEMU
guests, plugged into its bridge, and the context CD-ROM (kvm, microvm) or context files
(lxc). Once it runs: the NICs' filters (net.host.post). When it is removed: everything the
guest alone needed (net.host.clean). The guest's spec carries "nics", "network" and
"context" as the front-end sent them (see edgecloud.node.net).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from edgecloud.node.protocol import bad, tap_name

CONTEXT_ISO = "context.iso"
CONTEXT_DIR = ".edgecloud/context"  # inside a container's rootfs


def _net() -> ModuleType:
    """Import the host network code only for guests that have NICs."""
    return importlib.import_module("edgecloud.node.net.host")


def parse(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the spec's "nics", "network" and "context" fields, checked for shape."""
    nics = spec.get("nics") or []
    network = spec.get("network") or {}
    context = spec.get("context") or {}
    if not isinstance(nics, list) or not all(isinstance(n, dict) for n in nics):
        raise bad("spec 'nics' must be a list of objects")
    if not isinstance(network, dict) or not isinstance(context, dict):
        raise bad("spec 'network' and 'context' must be objects")
    if nics and not network:
        raise bad("spec 'nics' needs spec 'network' (the host's underlay)")
    files = context.get("files") or {}
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "/" not in k and k not in (".", "..")
        for k, v in files.items()
    ):
        raise bad("spec 'context.files' must map plain file names to text")
    return {"nics": nics, "network": network, "context": context}


def taps(spec: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Return each NIC with the name of its tap (host-side veth for lxc)."""
    return [(nic, tap_name(spec["deploy_id"], int(nic.get("nic_id", 0)))) for nic in spec["nics"]]


def _tap_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def up(root: Path, spec: dict[str, Any], guest_dir: Path) -> None:
    """Set up what the guest needs before it starts; undone by `down` on failure."""
    if spec["nics"]:
        _net().pre(root, spec["nics"], spec["network"], spec["deploy_id"])
        if spec["kind"] != "lxc":
            for nic, tap in taps(spec):
                if not _tap_exists(tap):
                    subprocess.run(
                        ["ip", "tuntap", "add", "dev", tap, "mode", "tap"],
                        check=True,
                        capture_output=True,
                    )
                _net().plug(root, nic, tap)
    iso = spec["context"].get("iso")
    if iso and spec["kind"] != "lxc":
        try:
            (guest_dir / CONTEXT_ISO).write_bytes(base64.b64decode(iso, validate=True))
        except (binascii.Error, ValueError):
            raise bad("spec 'context.iso' is not base64") from None


def write_context_files(spec: dict[str, Any], rootfs: Path) -> None:
    """Put a container's context files under /.edgecloud/context in its rootfs."""
    files = spec["context"].get("files") or {}
    if not files:
        return
    target = rootfs / CONTEXT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text)


def plug_veths(root: Path, spec: dict[str, Any]) -> None:
    """Plug a started container's host-side veths (LXC put them on the bridge already)."""
    for nic, tap in taps(spec):
        if _tap_exists(tap):
            _net().plug(root, nic, tap)


def post(root: Path, spec: dict[str, Any]) -> None:
    """Filter the running guest's NICs."""
    if spec["nics"]:
        _net().post(root, spec["nics"], spec["network"], spec["deploy_id"])


def down(root: Path, spec: dict[str, Any]) -> None:
    """Remove the guest's taps, chains, and the devices no other guest uses."""
    if spec.get("nics"):
        _net().clean(root, spec["nics"], spec["network"], spec["deploy_id"])


def qemu_args(spec: dict[str, Any], guest_dir: Path) -> list[str]:
    """Return QEMU's NIC (tap + virtio-net with the lease's MAC) and context CD-ROM args.

    NIC i is netdev ``net<i>`` and device ``nic<i>`` (hotplug.py finds them by these ids);
    a NIC whose PCI slot was recorded (``pci_slot``, after a hotplug) is put back there.
    """
    args: list[str] = []
    microvm = spec["kind"] == "microvm"
    for nic, tap in taps(spec):
        index = int(nic.get("nic_id", 0))
        args += ["-netdev", f"tap,id=net{index},ifname={tap},script=no,downscript=no"]
        device = "virtio-net-device" if microvm else "virtio-net-pci"
        device += f",netdev=net{index},mac={nic['mac']},id=nic{index}"
        slot = nic.get("pci_slot")
        if isinstance(slot, int) and not isinstance(slot, bool) and not microvm:
            device += f",addr={slot:#x}"  # where a hot-plugged NIC was: a restore must match
        args += ["-device", device]
    iso = guest_dir / CONTEXT_ISO
    if spec["context"].get("iso"):
        path = str(iso).replace(",", ",,")
        if microvm:
            args += ["-drive", f"id=context,file={path},if=none,format=raw,readonly=on"]
            args += ["-device", "virtio-blk-device,drive=context"]
        else:
            args += ["-drive", f"file={path},if=ide,media=cdrom,format=raw,readonly=on"]
    return args


def lxc_keys(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the LXC config keys of the container's NICs (veths on the vnets' bridges)."""
    if not spec["nics"]:
        return [("lxc.net.0.type", "empty")]
    keys: list[tuple[str, str]] = []
    for nic, tap in taps(spec):
        index = int(nic.get("nic_id", 0))
        prefix = f"lxc.net.{index}"
        keys += [
            (f"{prefix}.type", "veth"),
            (f"{prefix}.link", str(nic["vnet"]["bridge"])),
            (f"{prefix}.veth.pair", tap),
            (f"{prefix}.hwaddr", str(nic["mac"])),
            (f"{prefix}.name", f"eth{index}"),
            (f"{prefix}.flags", "up"),
        ]
        if nic["vnet"].get("mtu"):
            keys.append((f"{prefix}.mtu", str(int(nic["vnet"]["mtu"]))))
        if nic.get("ip"):
            keys.append((f"{prefix}.ipv4.address", f"{nic['ip']}/{int(nic.get('prefix') or 24)}"))
        if nic.get("gateway"):
            keys.append((f"{prefix}.ipv4.gateway", str(nic["gateway"])))
    return keys


@contextlib.contextmanager
def undone_on_failure(root: Path, spec: dict[str, Any]) -> Iterator[None]:
    """Remove the guest's networks again if what the block does fails."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            down(root, spec)
        raise
