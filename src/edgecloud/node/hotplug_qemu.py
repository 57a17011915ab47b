"""The QEMU side of NIC hotplug (see hotplug.py): a tap, and netdev + device over QMP.

NIC i is netdev ``net<i>`` and device ``nic<i>`` (as attach.qemu_args names those given
at boot). The device is found by the netdev it uses, among the named and the anonymous
peripherals, so a NIC of a guest started before devices had ids is found too. On the
``pc`` machine a removal is a request to the guest (ACPI PCI hotplug): it is done once
the device is gone, which is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient

from edgecloud.node import proc, qmp
from edgecloud.node.guest import GuestDir
from edgecloud.node.net import cmd, model
from edgecloud.node.net import host as net
from edgecloud.node.protocol import NodeError

DETACH_TIMEOUT = 30.0
PERIPHERALS = ("/machine/peripheral", "/machine/peripheral-anon")


def running_pid(guest: GuestDir) -> int | None:
    """Return QEMU's PID when the guest runs."""
    pid = proc.read_pid(guest.pidfile)
    return pid if proc.alive(pid, str(guest.pidfile)) else None


async def _device_of(client: QMPClient, netdev: str) -> str | None:
    """Return the QOM path of the NIC on `netdev` (None when the guest has none)."""
    for base in PERIPHERALS:
        try:
            children = await client.execute("qom-list", {"path": base})
        except ExecuteError:
            continue
        for child in children if isinstance(children, list) else []:
            if not str(child.get("type", "")).startswith("child<virtio-net"):
                continue
            path = f"{base}/{child['name']}"
            try:
                found = await client.execute("qom-get", {"path": path, "property": "netdev"})
            except ExecuteError:
                continue
            if found == netdev:
                return path
    return None


def plug(root: Path, guest: GuestDir, raw: dict[str, Any], nic: model.Nic) -> None:
    """Create the NIC's tap on its bridge and add the virtio-net device to the guest."""
    if not Path("/sys/class/net", nic.tap).exists():
        cmd.run(("ip", "tuntap", "add", "dev", nic.tap, "mode", "tap"))
    net.plug(root, raw, nic.tap)
    netdev = f"net{nic.nic_id}"

    async def steps(client: QMPClient) -> None:
        if await _device_of(client, netdev) is not None:
            return  # plugged already
        tap = {"type": "tap", "id": netdev, "ifname": nic.tap, "script": "no", "downscript": "no"}
        try:
            await client.execute("netdev_add", tap)
        except ExecuteError as exc:
            if "Duplicate" not in str(exc):
                raise
        device = {"driver": "virtio-net-pci", "id": f"nic{nic.nic_id}", "netdev": netdev}
        await client.execute("device_add", {**device, "mac": nic.mac})

    qmp.session(guest.path, steps)


def unplug(guest: GuestDir, nic: model.Nic) -> None:
    """Remove the NIC's device (waiting until the guest lets it go) and its netdev."""
    netdev = f"net{nic.nic_id}"

    async def steps(client: QMPClient) -> None:
        path = await _device_of(client, netdev)
        if path is not None:
            with contextlib.suppress(ExecuteError):  # e.g. a removal already under way
                await client.execute("device_del", {"id": path})
            deadline = time.monotonic() + DETACH_TIMEOUT
            while await _device_of(client, netdev) is not None:
                if time.monotonic() > deadline:
                    raise NodeError(
                        "failed",
                        f"the guest did not let NIC {nic.nic_id} go in {DETACH_TIMEOUT:g} s "
                        "(does its kernel do ACPI PCI hotplug?)",
                    )
                await asyncio.sleep(0.05)
        with contextlib.suppress(ExecuteError):  # no such netdev: removed already
            await client.execute("netdev_del", {"id": netdev})

    if running_pid(guest) is not None:
        qmp.session(guest.path, steps, timeout=DETACH_TIMEOUT + 10)


def with_slots(guest: GuestDir, nics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the NICs with the PCI slot each has now (``pci_slot``), for a restore.

    All or none: a NIC whose slot is unknown (a device without an id) would take any
    free slot on the command line, maybe one another NIC's recorded slot needs.
    """
    found = qmp.execute(guest.path, "query-pci")
    slots: dict[str, int] = {}
    for bus in found if isinstance(found, list) else []:
        for device in bus.get("devices", []) if bus.get("bus") == 0 else []:
            if device.get("qdev_id"):
                slots[str(device["qdev_id"])] = int(device["slot"])
    plain = [{k: v for k, v in raw.items() if k != "pci_slot"} for raw in nics]
    wanted = [slots.get(f"nic{int(raw.get('nic_id', 0))}") for raw in plain]
    if any(slot is None for slot in wanted):
        return plain
    return [{**raw, "pci_slot": slot} for raw, slot in zip(plain, wanted, strict=True)]
