"""What to run for a vnet on a host: pure functions from checked data to argv lists.

A vnet needs a few devices, in order: its bridge, then (by driver) the uplink enslaved to
it (bridge), an 802.1Q device on the uplink (vlan) or a VXLAN device (vxlan, evpn). Each
`Device` says how to create it (run only when it does not exist) and how to set it up
(run every time: every setup command is idempotent). The uplink is never created.

- bridge: ``ip link add <bridge> type bridge``; ``nf_call_iptables`` and
  ``nf_call_ip6tables`` on, so the ``inet edgecloud`` table (with conntrack) sees bridged
  traffic; the uplink (phydev), when given, becomes a port of it.
- vlan: ``<phydev>.<id>`` (``ec<id>v<hash>`` when that is over 15 characters), a port.
- vxlan: ``vxlan<vni>`` with ``local <host address>``, ``dstport 4789``, ``dev <phydev>``
  when given; multicast mode adds ``group`` (and needs a device: the phydev, else the
  host's uplink); flood mode keeps learning and gets one all-zero FDB entry per peer.
- evpn: ``vxlan<vni>`` with ``nolearning`` and bridge-port learning off: FRR (zebra)
  installs the remote MACs and flood entries that BGP EVPN carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgecloud.node.net.model import HostNet, Nic, Vnet, underlay_address

Argv = tuple[str, ...]
VXLAN_PORT = "4789"
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class Device:
    """One device of a vnet: how to create it and how to set it up."""

    name: str
    kind: str  # "bridge", "vlan", "vxlan", or "uplink" (exists already, never created)
    create: tuple[Argv, ...]
    setup: tuple[Argv, ...]
    vni: int | None = None  # the VXLAN id an existing vxlan device must have
    master: str | None = None  # the bridge a port must be in (no other)


def _mtu(name: str, mtu: int | None) -> tuple[Argv, ...]:
    return (("ip", "link", "set", "dev", name, "mtu", str(mtu)),) if mtu else ()


def _port(name: str, bridge: str, mtu: int | None) -> tuple[Argv, ...]:
    return (
        ("ip", "link", "set", "dev", name, "master", bridge),
        *_mtu(name, mtu),
        ("ip", "link", "set", "dev", name, "up"),
    )


def bridge(v: Vnet) -> Device:
    """Return the vnet's bridge."""
    netfilter = ("nf_call_iptables", "1", "nf_call_ip6tables", "1")
    return Device(
        name=v.bridge,
        kind="bridge",
        create=(("ip", "link", "add", v.bridge, "type", "bridge"),),
        setup=(
            ("ip", "link", "set", "dev", v.bridge, "type", "bridge", *netfilter),
            *_mtu(v.bridge, v.mtu),
            ("ip", "link", "set", "dev", v.bridge, "up"),
        ),
    )


def vxlan_create(v: Vnet, local: str, dev: str | None) -> Argv:
    """Return the command that creates a vnet's VXLAN device."""
    argv = ["ip", "link", "add", v.vxlan_dev, "type", "vxlan", "id", str(v.vlan_id)]
    argv += ["local", local, "dstport", VXLAN_PORT]
    if dev:
        argv += ["dev", dev]
    if v.driver == "vxlan" and v.vxlan_mode == "multicast" and v.group:
        argv += ["group", v.group]
    if v.driver == "evpn":
        argv += ["nolearning"]
    return tuple(argv)


def vxlan_parent(v: Vnet, uplink: str | None) -> str | None:
    """Return the VXLAN device's parent: the phydev, else the uplink for multicast."""
    if v.phydev:
        return v.phydev
    return uplink if v.driver == "vxlan" and v.vxlan_mode == "multicast" else None


def devices(v: Vnet, host: HostNet, uplink: str | None = None) -> list[Device]:
    """Return a vnet's devices in the order they are set up (the bridge first).

    `uplink` is the host's uplink device, used as a multicast VXLAN's parent when the
    vnet names no phydev.
    """
    out = [bridge(v)]
    if v.driver == "bridge" and v.phydev:
        out.append(Device(v.phydev, "uplink", (), _port(v.phydev, v.bridge, None), None, v.bridge))
    elif v.driver == "vlan" and v.phydev:
        name = v.vlan_dev
        create = ("ip", "link", "add", "link", v.phydev, "name", name)
        out.append(
            Device(
                name=name,
                kind="vlan",
                create=((*create, "type", "vlan", "id", str(v.vlan_id)),),
                setup=(("ip", "link", "set", "dev", v.phydev, "up"), *_port(name, v.bridge, v.mtu)),
                vni=v.vlan_id,
                master=v.bridge,
            )
        )
    elif v.driver in ("vxlan", "evpn"):
        parent = vxlan_parent(v, uplink)
        setup = list(_port(v.vxlan_dev, v.bridge, v.mtu))
        if v.driver == "evpn":
            setup.insert(1, ("bridge", "link", "set", "dev", v.vxlan_dev, "learning", "off"))
        if parent:
            setup.insert(0, ("ip", "link", "set", "dev", parent, "up"))
        out.append(
            Device(
                name=v.vxlan_dev,
                kind="vxlan",
                create=(vxlan_create(v, underlay_address(host, v), parent),),
                setup=tuple(setup),
                vni=v.vlan_id,
                master=v.bridge,
            )
        )
    return out


def done_already(argv: Argv, links: dict[str, dict[str, Any]]) -> bool:
    """Return whether a setup command would change nothing (per ``ip -d -j link show``).

    Only the setup commands of this module are recognised; anything else is never done.
    """
    link = links.get(argv[4]) if len(argv) > 4 and argv[3] == "dev" else None
    if link is None:
        return False
    rest = argv[5:]
    info = link.get("linkinfo") or {}
    if argv[:3] == ("ip", "link", "set"):
        if rest == ("up",):
            return "UP" in link.get("flags", [])
        if len(rest) == 2 and rest[0] == "master":
            return bool(link.get("master") == rest[1])
        if len(rest) == 2 and rest[0] == "mtu":
            return str(link.get("mtu")) == rest[1]
        if rest[:2] == ("type", "bridge"):
            data = info.get("info_data") or {}
            pairs = zip(rest[2::2], rest[3::2], strict=True)
            return all(str(data.get(key)) == value for key, value in pairs)
    if argv[:3] == ("bridge", "link", "set") and rest == ("learning", "off"):
        return (info.get("info_slave_data") or {}).get("learning") is False
    return False


def device_names(v: Vnet) -> list[str]:
    """Return the names of the devices a vnet may create (bridge, 802.1Q, VXLAN)."""
    names = [v.bridge]
    if v.driver == "vlan" and v.phydev:
        names.append(v.vlan_dev)
    elif v.driver in ("vxlan", "evpn"):
        names.append(v.vxlan_dev)
    return names


def flood_sync(v: Vnet, present: Iterable[str], peers: Iterable[str]) -> list[Argv]:
    """Return the FDB commands that make a flood-mode VXLAN's flood list exactly `peers`."""
    have, want = set(present), set(peers)
    fdb = ("bridge", "fdb")
    tail = ("dev", v.vxlan_dev)
    add: list[Argv] = [(*fdb, "append", ZERO_MAC, *tail, "dst", p) for p in sorted(want - have)]
    drop: list[Argv] = [(*fdb, "del", ZERO_MAC, *tail, "dst", p) for p in sorted(have - want)]
    return add + drop


def wants_flood_list(v: Vnet) -> bool:
    """Return whether a vnet keeps a static flood list (vxlan in flood mode)."""
    return v.driver == "vxlan" and v.vxlan_mode == "flood"


def plug(v: Vnet, name: str) -> list[Argv]:
    """Return the commands that make a guest's tap/veth a port of its vnet's bridge."""
    return list(_port(name, v.bridge, v.mtu))


def public_route(n: Nic, verb: str = "replace") -> Argv | None:
    """Return the command that adds ("replace") or removes ("del") a public NIC's route:
    its address, sent to its bridge."""
    if not n.vnet.public or n.ip is None:
        return None
    family = "-6" if ":" in n.ip else "-4"
    bits = "128" if ":" in n.ip else "32"
    return ("ip", family, "route", verb, f"{n.ip}/{bits}", "dev", n.vnet.bridge)


def gateway_address(n: Nic) -> str | None:
    """Return the address (with prefix) a masquerade vnet's bridge carries: the gateway."""
    if not n.vnet.masquerade or n.gateway is None or n.ip is None or ":" in n.gateway:
        return None
    return f"{n.gateway}/{n.prefix or 24}"


def sysctls(public: bool, routed: bool, devices: Iterable[str]) -> dict[str, str]:
    """Return the sysctls (as /proc/sys paths) that public and masquerade vnets need.

    Routed traffic (public or masquerade) needs IPv4 forwarding; public addresses need
    proxy ARP, answered at once, on the uplink and on the bridges.
    """
    out: dict[str, str] = {}
    if routed:
        out["net/ipv4/ip_forward"] = "1"
    if public:
        for dev in sorted(set(devices)):
            out[f"net/ipv4/conf/{dev}/proxy_arp"] = "1"
            out[f"net/ipv4/neigh/{dev}/proxy_delay"] = "0"
    return out


def describe(v: Vnet, host: HostNet, uplink: str | None = None) -> str:
    """Return a vnet's plan as text: one block per device (golden tests read this)."""
    lines = [f"# vnet {v.id} {v.driver} bridge={v.bridge}"]
    for device in devices(v, host, uplink):
        lines.append(f"device {device.name} ({device.kind})")
        lines += ["  create: " + " ".join(argv) for argv in device.create]
        lines += ["  setup:  " + " ".join(argv) for argv in device.setup]
    if wants_flood_list(v):
        lines.append("flood list (from none)")
        lines += ["  " + " ".join(argv) for argv in flood_sync(v, (), host.peers)]
    return "\n".join(lines) + "\n"
