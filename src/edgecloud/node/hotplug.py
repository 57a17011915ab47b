"""NICs plugged into and out of a running guest: the node actions nic_attach, nic_detach.

Attach: the vnets' devices for the guest's NICs with the new one (net.host.pre), the
NIC's host side, then the guest side:

- kvm (``pc`` machine): a tap ``ec<vm>n<i>`` on the bridge, QMP ``netdev_add`` (tap
  ``net<i>``) and ``device_add`` (virtio-net-pci ``nic<i>`` with the lease's MAC); see
  hotplug_qemu.py. The PCI slots the NICs then have are kept in spec.json, so a restore
  (which must rebuild the same machine) puts them back there.
- lxc: a veth pair, the host side ``ec<vm>n<i>`` on the bridge, the other moved into the
  container's network namespace and set up there as ``eth<i>``: MAC, IPv4 address,
  up, a default route through the NIC's gateway when the container has none. The LXC
  config is written again from the new spec, so the next start has the NIC too.
- microvm: refused (virtio-mmio has no hotplug).

spec.json then lists the NIC, and the filters of all the guest's NICs are written again
(net.host.post). Detach undoes it: the device out of the guest (kvm: ``device_del``,
then waiting until the guest let it go; lxc: the veth deleted), the tap, the NIC out of
spec.json, its filters and routes, and every device no guest needs any more
(net.host.forget). Both are idempotent: attaching an attached NIC, or detaching one the
guest does not have, succeeds. A failed attach removes what it made.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from edgecloud.node import lxc
from edgecloud.node.guest import GuestDir, read_spec, write_spec
from edgecloud.node.net import cmd, model
from edgecloud.node.net import host as net
from edgecloud.node.protocol import NodeError, bad

NO_HOTPLUG = "microvm has no hotplug: power it off to change its NICs"


def _qemu() -> ModuleType:
    """Import the QMP side on first use (asyncio and qemu.qmp are slow to import)."""
    return importlib.import_module("edgecloud.node.hotplug_qemu")


def _load(root: Path, deploy_id: str) -> tuple[GuestDir, dict[str, Any]]:
    guest = GuestDir(root, deploy_id)
    spec = read_spec(guest)
    if spec is None:
        raise NodeError("missing", f"{deploy_id} is not on this host")
    return guest, {"nics": [], "network": {}, "context": {}, **spec}


def _nic_id(raw: dict[str, Any]) -> int:
    return int(raw.get("nic_id", 0))


def _without(nics: list[dict[str, Any]], nic_id: int) -> list[dict[str, Any]]:
    return [raw for raw in nics if _nic_id(raw) != nic_id]


def _running(guest: GuestDir, kind: str) -> int | None:
    """Return the PID of the running guest (QEMU, or the container's init)."""
    if kind == "lxc":
        return lxc.init_pid(guest)
    pid: int | None = _qemu().running_pid(guest)
    return pid


def _save(guest: GuestDir, spec: dict[str, Any]) -> None:
    """Write spec.json (and a container's LXC config) for the guest's NICs now."""
    write_spec(guest, spec)
    if spec["kind"] == "lxc" and guest.container.is_dir():
        lxc.write_config(guest, spec)


def attach(
    root: Path, deploy_id: str, raw: dict[str, Any], host_net: dict[str, Any]
) -> dict[str, Any]:
    """Plug NIC `raw` into the running guest; return its id and host-side device."""
    guest, spec = _load(root, deploy_id)
    if spec["kind"] == "microvm":
        raise NodeError("failed", NO_HOTPLUG)
    nic = model.nic(raw, deploy_id)
    network = host_net or spec["network"]
    model.host_net(network)
    if not network:
        raise bad("'network' (the host's underlay) is required for a NIC")
    pid = _running(guest, spec["kind"])
    if pid is None:
        raise NodeError("failed", f"{deploy_id} is not running")
    before = spec
    nics = sorted([*_without(spec["nics"], nic.nic_id), raw], key=_nic_id)
    spec = {**spec, "nics": nics, "network": network}
    try:
        net.pre(root, nics, network, deploy_id)
        if spec["kind"] == "lxc":
            _lxc_plug(root, pid, raw, nic)
        else:
            _qemu().plug(root, guest, raw, nic)
            spec["nics"] = _qemu().with_slots(guest, nics)
        _save(guest, spec)
        net.post(root, spec["nics"], network, deploy_id)
    except BaseException:
        with contextlib.suppress(Exception):
            _unplug(guest, spec["kind"], nic)
        with contextlib.suppress(Exception):
            net.forget(root, [nic.nic_id], deploy_id)
        with contextlib.suppress(Exception):
            _save(guest, {**before, "nics": _without(before["nics"], nic.nic_id)})
        raise
    return {"nic_id": nic.nic_id, "device": nic.tap}


def detach(root: Path, deploy_id: str, nic_id: int) -> dict[str, Any]:
    """Unplug NIC `nic_id` from the running guest (a NIC it does not have: nothing to do)."""
    guest, spec = _load(root, deploy_id)
    tap = model.tap_name(deploy_id, nic_id)
    known = [raw for raw in spec["nics"] if _nic_id(raw) == nic_id]
    if not known:
        net.forget(root, [nic_id], deploy_id)  # leftovers of an attach that died midway
        return {"nic_id": nic_id, "device": tap}
    if spec["kind"] == "microvm":
        raise NodeError("failed", NO_HOTPLUG)
    pid = _running(guest, spec["kind"])
    if pid is None:
        raise NodeError("failed", f"{deploy_id} is not running")
    nic = model.nic(known[0], deploy_id)
    _unplug(guest, spec["kind"], nic)
    nics = _without(spec["nics"], nic_id)
    if spec["kind"] != "lxc":
        nics = _qemu().with_slots(guest, nics)
    _save(guest, {**spec, "nics": nics})
    net.forget(root, [nic_id], deploy_id)
    return {"nic_id": nic_id, "device": tap}


def _unplug(guest: GuestDir, kind: str, nic: model.Nic) -> None:
    """Take the NIC out of the guest and delete its host-side device."""
    if kind != "lxc":
        _qemu().unplug(guest, nic)
    cmd.run(("ip", "link", "del", "dev", nic.tap), check=False)
    if kind == "lxc":
        cmd.run(("ip", "link", "del", "dev", _peer(nic.tap)), check=False)


# --- lxc ----------------------------------------------------------------------------------


def _peer(tap: str) -> str:
    """Return the temporary host-side name of a veth's container end (<= 15 chars)."""
    return "ecp" + hashlib.sha256(tap.encode()).hexdigest()[:10]


def _inside(pid: int, *argv: str, check: bool = True) -> str:
    """Run `ip ...` in the container's network namespace."""
    return cmd.run(("nsenter", "-t", str(pid), "-n", "--", "ip", *argv), check=check)


def _has_link(pid: int, name: str) -> bool:
    out = _inside(pid, "-j", "link", "show", "dev", name, check=False).strip()
    try:
        return bool(out) and bool(json.loads(out))
    except ValueError:
        return False


def _lxc_plug(root: Path, pid: int, raw: dict[str, Any], nic: model.Nic) -> None:
    """Give the container NIC eth<i> on a veth whose host side is on the vnet's bridge."""
    name = f"eth{nic.nic_id}"
    links = cmd.links()
    if not (nic.tap in links and _has_link(pid, name)):
        peer = _peer(nic.tap)
        for stale in (nic.tap, peer):
            if stale in links:
                cmd.run(("ip", "link", "del", "dev", stale), check=False)
        if _has_link(pid, name):
            raise NodeError("failed", f"the container already has an {name} that is not ours")
        cmd.run(("ip", "link", "add", nic.tap, "type", "veth", "peer", "name", peer))
        cmd.run(("ip", "link", "set", "dev", peer, "address", nic.mac))
        if nic.vnet.mtu:
            cmd.run(("ip", "link", "set", "dev", peer, "mtu", str(nic.vnet.mtu)))
        cmd.run(("ip", "link", "set", "dev", peer, "netns", str(pid)))
        _inside(pid, "link", "set", "dev", peer, "name", name)
    _inside(pid, "link", "set", "dev", name, "address", nic.mac)
    if nic.ip and ":" not in nic.ip:
        _inside(pid, "addr", "replace", f"{nic.ip}/{nic.prefix or 24}", "dev", name)
    _inside(pid, "link", "set", "dev", name, "up")
    if nic.gateway and ":" not in nic.gateway:
        routes = _inside(pid, "-4", "-j", "route", "show", "default").strip()
        if not routes or routes == "[]":
            _inside(pid, "-4", "route", "add", "default", "via", nic.gateway, "dev", name)
    net.plug(root, raw, nic.tap)
