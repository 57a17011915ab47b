"""The entry points: a guest's networks around its life on this host.

    pre(root, nics, host_net, guest)   before the guest starts: bridges, 802.1Q/VXLAN
                                       devices, flood lists, FRR for EVPN
    plug(root, nic, ifname)            once its tap/veth exists: a port of the bridge, up
    post(root, nics, host_net, guest)  security groups (nftables), public routes and proxy
                                       ARP, masquerade
    update_sg(root, nics, guest)       security groups again (new rules), nothing else
    clean(root, nics, host_net, guest) the guest's routes, chains and leftover taps; then
                                       every device, sysctl, address and FRR that no guest
                                       under ROOT needs any more
    forget(root, nic_ids, guest)       the same for some NICs of a guest (hot-detached)

All are idempotent and hold ROOT/net/lock while they change anything. A failed pre
removes the devices it created before raising. Only what the registry (registry.py)
says this code created is ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgecloud.node.net import cmd, frr, model, nft, plan
from edgecloud.node.net.model import HostNet, Nic, Vnet
from edgecloud.node.net.registry import Registry, locked
from edgecloud.node.protocol import NodeError, bad

BRIDGE_NETFILTER = Path("/proc/sys/net/bridge")
EXPECTED_KIND = {"bridge": "bridge", "vlan": "vlan", "vxlan": "vxlan"}


def frr_name(root: Path, host: HostNet) -> str:
    """Return the FRR pathspace: the host's, else one derived from ROOT."""
    return host.frr_name or "ec-" + hashlib.sha256(str(root).encode()).hexdigest()[:8]


def _vnets(nics: Iterable[Nic]) -> list[Vnet]:
    """Return the distinct vnets of these NICs (one per bridge), in order."""
    seen: dict[str, Vnet] = {}
    for n in nics:
        seen.setdefault(n.vnet.bridge, n.vnet)
    return list(seen.values())


def _guest_nics(registry: Registry, skip: str | None = None) -> list[Nic]:
    """Return the NICs of every guest in the registry (but `skip`)."""
    found: list[Nic] = []
    for guest, record in sorted(registry.guests.items()):
        if guest != skip:
            found += model.nics(record["nics"], guest)
    return found


def _br_netfilter() -> None:
    """Make sure bridged traffic can reach the inet hooks (security groups need it)."""
    if not BRIDGE_NETFILTER.is_dir():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not BRIDGE_NETFILTER.is_dir():
        raise NodeError("failed", "security groups need the br_netfilter kernel module")


def _uplink(host: HostNet) -> str:
    """Return the host's uplink: as given, else the device that carries its address."""
    if host.uplink:
        return host.uplink
    found = cmd.device_of(host.address) if host.address else None
    if found is None:
        raise NodeError("failed", f"no device carries the host's address {host.address}")
    return found


def _ensure(device: plan.Device, links: dict[str, dict[str, Any]], made: list[str]) -> None:
    """Create a device when missing (check it when not); run the setup it still needs."""
    link = links.get(device.name)
    if link is None:
        if device.kind == "uplink":
            raise NodeError("failed", f"the vnet's phydev {device.name} does not exist")
        for argv in device.create:
            cmd.run(argv)
        made.append(device.name)
        links.update(cmd.links())
    else:
        kind = cmd.kind_of(link)
        expected = EXPECTED_KIND.get(device.kind)
        if expected and kind != expected:
            raise NodeError("failed", f"{device.name} exists and is not a {expected} ({kind})")
        if device.vni is not None and cmd.vni_of(link) != device.vni:
            raise NodeError("failed", f"{device.name} exists with another id than {device.vni}")
        master = link.get("master")
        if device.master and master not in (None, device.master):
            raise NodeError("failed", f"{device.name} is already a port of {master}")
    for argv in device.setup:
        if not plan.done_already(argv, links):
            cmd.run(argv)


def _sync_flood(v: Vnet, host: HostNet) -> None:
    for argv in plan.flood_sync(v, cmd.flood_list(v.vxlan_dev), host.peers):
        cmd.run(argv)


def _delete_links(names: Iterable[str]) -> None:
    for name in names:
        cmd.run(("ip", "link", "del", "dev", name), check=False)


def pre(root: Path, nics: list[dict[str, Any]], host_net: dict[str, Any], guest: str) -> None:
    """Set up what the guest's NICs need before it starts; undo it all on failure."""
    guest = model.guest_id(guest)
    checked = model.nics(nics, guest)
    host = model.host_net(host_net)
    if any(n.rules for n in checked):
        _br_netfilter()
    with locked(root) as registry:
        model.same_bridge(_guest_nics(registry, skip=guest) + checked)
        made: list[str] = []
        started_frr = False
        try:
            links = cmd.links()
            for v in _vnets(checked):
                multicast = v.driver == "vxlan" and v.vxlan_mode == "multicast" and not v.phydev
                uplink = _uplink(host) if multicast else None
                for device in plan.devices(v, host, uplink):
                    _ensure(device, links, made)
                if plan.wants_flood_list(v):
                    _sync_flood(v, host)
            if any(n.vnet.driver == "evpn" for n in checked):
                name = frr_name(root, host)
                if registry.frr not in (None, name):
                    raise bad(f"this ROOT runs FRR as {registry.frr}, not {name}")
                started_frr = registry.frr is None
                frr.ensure(root, host, name)
                registry.frr = name
            registry.guests[guest] = {"nics": nics, "network": host_net}
        except BaseException:
            _delete_links(reversed(made))
            with contextlib.suppress(NodeError):
                left = set(cmd.links())
                made = [name for name in made if name in left]
            if started_frr and registry.frr:
                frr.stop(root, registry.frr)
                registry.frr = None
            raise
        finally:
            registry.created += [name for name in made if name not in registry.created]


def plug(root: Path, nic: dict[str, Any], ifname: str) -> None:
    """Make a guest's tap/veth a port of its vnet's bridge, set its MTU and bring it up."""
    n = model.nic(nic)
    name = model.ifname(ifname, "ifname")
    with locked(root):
        links = cmd.links()
        if n.vnet.bridge not in links:
            raise NodeError("failed", f"bridge {n.vnet.bridge} does not exist (run pre first)")
        if name not in links:
            raise NodeError("missing", f"{name} does not exist")
        for argv in plan.plug(n.vnet, name):
            cmd.run(argv)


def _uplinks(registry: Registry) -> dict[str, str]:
    """Return each guest's uplink, for the guests whose NICs route (public, masquerade)."""
    out: dict[str, str] = {}
    found: dict[str, str] = {}
    for guest, record in registry.guests.items():
        nics = model.nics(record["nics"], guest)
        if any(n.vnet.public or n.vnet.masquerade for n in nics):
            host = model.host_net(record["network"])
            key = f"{host.uplink}|{host.address}"
            if key not in found:
                found[key] = _uplink(host)
            out[guest] = found[key]
    return out


def _apply_rules(registry: Registry, uplinks: dict[str, str], check_only: bool = False) -> None:
    """Write the whole host's ruleset again (one transaction); or only render it."""
    masquerade, gateways, everything = [], [], []
    for guest, record in sorted(registry.guests.items()):
        for n in model.nics(record["nics"], guest):
            everything.append(n)
            if n.vnet.masquerade and n.subnet:
                masquerade.append((uplinks[guest], n.subnet))
                if n.gateway and n.vnet.driver in ("vxlan", "evpn"):
                    gateways.append((n.vnet.vxlan_dev, n.gateway))
    wanted = bool(masquerade or gateways or any(n.rules for n in everything))
    text = nft.ruleset(everything, masquerade, gateways)
    if check_only:
        return
    if wanted or registry.nft:
        nft.apply(text)
    registry.nft = wanted


def _sysctls(registry: Registry, uplinks: dict[str, str]) -> None:
    """Set the sysctls routed NICs need; put back those no guest needs any more."""
    nics = _guest_nics(registry)
    public = [n for n in nics if n.vnet.public and n.ip]
    routed = bool(public) or any(n.vnet.masquerade for n in nics)
    devices = [n.vnet.bridge for n in public] + (list(uplinks.values()) if public else [])
    wanted = plan.sysctls(bool(public), routed, devices)
    for path, value in wanted.items():
        old = cmd.sysctl_read(path)
        if old is not None and old != value:
            registry.sysctl.setdefault(path, old)
            cmd.sysctl_write(path, value)
    for path in [p for p in registry.sysctl if p not in wanted]:
        if cmd.sysctl_read(path) is not None:
            with contextlib.suppress(NodeError):
                cmd.sysctl_write(path, registry.sysctl[path])
        del registry.sysctl[path]


def _addresses(registry: Registry) -> None:
    """Give masquerade bridges their gateway address; remove those no guest needs."""
    wanted = {
        (address, n.vnet.bridge)
        for n in _guest_nics(registry)
        if (address := plan.gateway_address(n)) is not None
    }
    if not wanted and not registry.addresses:
        return
    links = cmd.links()
    for address, dev in sorted(wanted):
        if dev in links and address not in cmd.addresses(dev):
            cmd.run(("ip", "addr", "add", address, "dev", dev))
            registry.addresses.append([address, dev])
    for pair in list(registry.addresses):
        if tuple(pair) not in wanted:
            if pair[1] in links:
                cmd.run(("ip", "addr", "del", pair[0], "dev", pair[1]), check=False)
            registry.addresses.remove(pair)


def post(root: Path, nics: list[dict[str, Any]], host_net: dict[str, Any], guest: str) -> None:
    """Filter the guest's NICs; route its public addresses; masquerade its private ones."""
    guest = model.guest_id(guest)
    checked = model.nics(nics, guest)
    model.host_net(host_net)
    if any(n.rules for n in checked):
        _br_netfilter()
    with locked(root) as registry:
        model.same_bridge(_guest_nics(registry, skip=guest) + checked)
        before = registry.guests.get(guest)
        registry.guests[guest] = {"nics": nics, "network": host_net}
        try:
            _apply_rules(registry, _uplinks(registry), check_only=True)
        except BaseException:
            _restore(registry, guest, before)
            raise
        for n in checked:
            route = plan.public_route(n)
            if route is not None:
                cmd.run(route)
        uplinks = _uplinks(registry)
        _addresses(registry)
        _sysctls(registry, uplinks)
        _apply_rules(registry, uplinks)


def _restore(registry: Registry, guest: str, before: dict[str, Any] | None) -> None:
    """Put a guest's record back as it was (a refused change must not stay recorded)."""
    if before is None:
        registry.guests.pop(guest, None)
    else:
        registry.guests[guest] = before


def update_sg(root: Path, nics: list[dict[str, Any]], guest: str) -> None:
    """Replace the rules of the guest's NICs (by nic_id) and rewrite the ruleset."""
    guest = model.guest_id(guest)
    checked = model.nics(nics, guest)
    if any(n.rules for n in checked):
        _br_netfilter()
    with locked(root) as registry:
        record = registry.guests.get(guest)
        if record is None:
            raise NodeError("missing", f"{guest} has no networks on this host")
        stored = {int(raw.get("nic_id", 0)): raw for raw in record["nics"]}
        for raw, n in zip(nics, checked, strict=True):
            if n.nic_id not in stored:
                raise bad(f"{guest} has no NIC {n.nic_id} on this host")
            stored[n.nic_id] = {
                **stored[n.nic_id],
                "rules": raw.get("rules") or [],
                "security_groups": raw.get("security_groups") or [],
            }
        before = dict(record)
        record["nics"] = list(stored.values())
        try:
            _apply_rules(registry, _uplinks(registry))
        except BaseException:
            _restore(registry, guest, before)
            raise


def _needed_devices(nics: Iterable[Nic]) -> set[str]:
    return {name for v in _vnets(nics) for name in plan.device_names(v)}


def clean(root: Path, nics: list[dict[str, Any]], host_net: dict[str, Any], guest: str) -> None:
    """Remove the guest's routes, chains and taps, then whatever no guest needs any more."""
    guest = model.guest_id(guest)
    with locked(root) as registry:
        record = registry.guests.pop(guest, None)
        _release(root, registry, model.nics(record["nics"] if record else nics, guest))


def forget(root: Path, nic_ids: Iterable[int], guest: str) -> None:
    """Drop some NICs of a guest (hot-detached): as clean does for those NICs alone.

    The guest's other NICs keep their filters; a guest left with no NIC leaves the
    registry. NICs the registry does not hold are no-ops.
    """
    guest = model.guest_id(guest)
    ids = set(nic_ids)
    with locked(root) as registry:
        record = registry.guests.get(guest)
        if record is None:
            return
        gone = [raw for raw in record["nics"] if int(raw.get("nic_id", 0)) in ids]
        if not gone:
            return
        kept = [raw for raw in record["nics"] if raw not in gone]
        if kept:
            registry.guests[guest] = {**record, "nics": kept}
        else:
            del registry.guests[guest]
        _release(root, registry, model.nics(gone, guest))


def _release(root: Path, registry: Registry, gone: list[Nic]) -> None:
    """Remove what these NICs (no longer in the registry) had, then what nothing needs."""
    links = cmd.links()
    for n in gone:
        route = plan.public_route(n, "del")
        if route is not None and n.vnet.bridge in links:
            cmd.run(route, check=False)
    uplinks = _uplinks(registry)
    _apply_rules(registry, uplinks)
    _addresses(registry)
    _sysctls(registry, uplinks)
    # The NICs' own taps/veths, if their hypervisor left them behind.
    leftovers = [n.tap for n in gone if cmd.kind_of(links.get(n.tap, {})) in ("tun", "veth")]
    _delete_links(leftovers)
    remaining = _guest_nics(registry)
    needed = _needed_devices(remaining)
    unused = [name for name in reversed(registry.created) if name not in needed]
    _delete_links(name for name in unused if name in links)
    registry.created = [name for name in registry.created if name not in unused]
    if registry.frr and not any(n.vnet.driver == "evpn" for n in remaining):
        frr.stop(root, registry.frr)
        registry.frr = None
