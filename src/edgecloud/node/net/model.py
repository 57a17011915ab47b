"""The network data of a request, checked and frozen (see the package docstring).

Every name that becomes an interface name, every address and every number is checked
here, before anything runs: commands are argv lists, but a value must also not be able to
change what an nftables ruleset or an FRR config says. A bad value is a bad_request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from edgecloud.node.protocol import DEPLOY_ID, bad, flag
from edgecloud.node.protocol import tap_name as tap_name  # re-exported: callers use model.tap_name

IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
FRR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
DRIVERS = ("bridge", "vlan", "vxlan", "evpn")
VXLAN_MODES = ("flood", "multicast")
PROTOCOLS = ("TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL")
DIRECTIONS = ("inbound", "outbound")
MAX_VNI = 16_777_215
DEFAULT_ASN = 65000

Raw = dict[str, Any]


def ifname(value: Any, what: str) -> str:
    """Return an interface name: 1-15 of [A-Za-z0-9_.-], not starting with - or ."""
    if not isinstance(value, str) or not IFNAME.fullmatch(value):
        raise bad(f"{what} must be an interface name (1-15 of A-Z a-z 0-9 _ . -): {value!r:.40}")
    return value


def address(value: Any, what: str) -> str:
    """Return an IPv4 or IPv6 address in its canonical text."""
    if not isinstance(value, str):
        raise bad(f"{what} must be an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise bad(f"{what} must be an IP address, not {value!r:.40}") from None


def network(value: Any, what: str) -> str:
    """Return a network (host bits cleared) in its canonical text."""
    if not isinstance(value, str):
        raise bad(f"{what} must be a network like 198.18.0.0/24")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise bad(f"{what} must be a network like 198.18.0.0/24, not {value!r:.40}") from None


def number(value: Any, what: str, low: int, high: int) -> int:
    """Return an integer between low and high."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(f"{what} must be an integer from {low} to {high}, not {value!r:.40}")
    return value


def _optional(raw: Raw, key: str) -> Any:
    value = raw.get(key)
    return None if value is None or value == "" else value


def _object(value: Any, what: str) -> Raw:
    if not isinstance(value, dict):
        raise bad(f"{what} must be an object")
    return value


@dataclass(frozen=True)
class Vnet:
    """A virtual network as one host sees it."""

    id: int
    driver: str
    bridge: str
    phydev: str | None
    vlan_id: int | None  # 802.1Q id (vlan) or VNI (vxlan, evpn)
    mtu: int | None
    vxlan_mode: str
    group: str | None
    public: bool
    masquerade: bool
    filter_ip_spoofing: bool

    @property
    def vxlan_dev(self) -> str:
        """Return the VXLAN device of a vxlan/evpn vnet: vxlan<vni> (at most 13 chars)."""
        return f"vxlan{self.vlan_id}"

    @property
    def vlan_dev(self) -> str:
        """Return the 802.1Q device: <phydev>.<id>, or ec<id>v<hash> when that is too long."""
        name = f"{self.phydev}.{self.vlan_id}"
        if len(name) <= 15:
            return name
        digest = hashlib.sha256(str(self.phydev).encode()).hexdigest()[:6]
        return f"ec{self.vlan_id}v{digest}"


def vnet(raw: Any) -> Vnet:
    """Check a NIC's "vnet" object."""
    raw = _object(raw, "'vnet'")
    driver = raw.get("driver")
    if driver not in DRIVERS:
        raise bad(f"vnet driver must be one of {', '.join(DRIVERS)}, not {driver!r:.40}")
    phydev = ifname(raw["phydev"], "vnet phydev") if _optional(raw, "phydev") else None
    vlan_id = _optional(raw, "vlan_id")
    if driver == "vlan":
        vlan_id = number(vlan_id, "vnet vlan_id", 1, 4094)
        if phydev is None:
            raise bad("a vlan vnet needs a phydev (the 802.1Q parent)")
    elif driver in ("vxlan", "evpn"):
        vlan_id = number(vlan_id, "vnet vlan_id (the VNI)", 1, MAX_VNI)
    else:
        vlan_id = None
    mode = str(_optional(raw, "vxlan_mode") or "flood").lower()
    if mode not in VXLAN_MODES:
        raise bad(f"vnet vxlan_mode must be flood or multicast, not {mode!r:.40}")
    group = None
    if driver == "vxlan" and mode == "multicast":
        group = address(_optional(raw, "group"), "vnet group")
        if not ipaddress.ip_address(group).is_multicast:
            raise bad(f"vnet group {group} is not a multicast address")
    mtu = _optional(raw, "mtu")
    return Vnet(
        id=number(raw.get("id", 0), "vnet id", 0, 2**31),
        driver=driver,
        bridge=ifname(raw.get("bridge"), "vnet bridge"),
        phydev=phydev,
        vlan_id=vlan_id,
        mtu=None if mtu is None else number(mtu, "vnet mtu", 68, 65535),
        vxlan_mode=mode,
        group=group,
        public=flag(raw, "public"),
        masquerade=flag(raw, "masquerade"),
        filter_ip_spoofing=flag(raw, "filter_ip_spoofing"),
    )


@dataclass(frozen=True)
class Rule:
    """One security group rule, resolved (cidrs None = any address)."""

    direction: str
    protocol: str
    ports: tuple[tuple[int, int], ...] | None
    icmp_type: int | None
    cidrs: tuple[str, ...] | None


def rule(raw: Any) -> Rule:
    """Check one rule of a NIC's "rules"."""
    raw = _object(raw, "a rule")
    direction = str(raw.get("direction", "inbound")).lower()
    if direction not in DIRECTIONS:
        raise bad(f"rule direction must be inbound or outbound, not {direction!r:.40}")
    protocol = str(raw.get("protocol", "ALL")).upper()
    if protocol not in PROTOCOLS:
        raise bad(f"rule protocol must be one of {', '.join(PROTOCOLS)}: {protocol!r:.40}")
    ports: tuple[tuple[int, int], ...] | None = None
    if _optional(raw, "ports") is not None and protocol in ("TCP", "UDP"):
        pairs = raw["ports"]
        if not isinstance(pairs, list) or not pairs:
            raise bad("rule ports must be a list of [first, last] pairs")
        checked = []
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise bad("rule ports must be a list of [first, last] pairs")
            low, high = (number(p, "a rule port", 1, 65535) for p in pair)
            if low > high:
                raise bad(f"rule port range {low}:{high} is backwards")
            checked.append((low, high))
        ports = tuple(sorted(set(checked)))
    icmp_type = _optional(raw, "icmp_type")
    if icmp_type is not None:
        icmp_type = number(icmp_type, "rule icmp_type", 0, 255)
    cidrs: tuple[str, ...] | None = None
    if raw.get("cidrs") is not None:
        if not isinstance(raw["cidrs"], list):
            raise bad("rule cidrs must be a list of networks or null")
        cidrs = tuple(sorted({network(c, "a rule cidr") for c in raw["cidrs"]}))
    return Rule(direction, protocol, ports, icmp_type, cidrs)


@dataclass(frozen=True)
class Nic:
    """One NIC of a guest: its vnet, addresses, security group rules and host-side name."""

    nic_id: int
    mac: str
    ip: str | None
    prefix: int | None
    gateway: str | None
    ip6: str | None
    vnet: Vnet
    rules: tuple[Rule, ...]
    tap: str  # ec<vm>n<nic_id>: the tap (kvm, microvm) or host-side veth (lxc)

    @property
    def subnet(self) -> str | None:
        """Return the IPv4 network of the NIC's address (None without one)."""
        if self.ip is None or ":" in self.ip:
            return None
        return str(ipaddress.ip_network(f"{self.ip}/{self.prefix or 24}", strict=False))


def guest_id(value: Any) -> str:
    """Return a deploy id (one-<vm id>)."""
    if not isinstance(value, str) or not DEPLOY_ID.fullmatch(value):
        raise bad(f"the guest must be a deploy id like one-5, not {value!r:.40}")
    return value


def nic(raw: Any, guest: str | None = None) -> Nic:
    """Check one NIC (its tap name needs the guest; without one it is "")."""
    raw = _object(raw, "a NIC")
    nic_id = number(raw.get("nic_id", 0), "nic_id", 0, 999)
    mac = raw.get("mac")
    if not isinstance(mac, str) or not MAC.fullmatch(mac.lower()):
        raise bad(f"NIC {nic_id}: mac must look like 02:00:c6:12:00:0a, not {mac!r:.40}")
    ip = address(raw["ip"], "NIC ip") if _optional(raw, "ip") is not None else None
    prefix = _optional(raw, "prefix")
    if prefix is not None:
        prefix = number(prefix, "NIC prefix", 0, 128 if ip and ":" in ip else 32)
    gateway = _optional(raw, "gateway")
    ip6 = _optional(raw, "ip6")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise bad(f"NIC {nic_id}: rules must be a list")
    return Nic(
        nic_id=nic_id,
        mac=mac.lower(),
        ip=ip,
        prefix=prefix,
        gateway=None if gateway is None else address(gateway, "NIC gateway"),
        ip6=None if ip6 is None else address(ip6, "NIC ip6"),
        vnet=vnet(raw.get("vnet")),
        rules=tuple(rule(r) for r in rules),
        tap=tap_name(guest, nic_id) if guest is not None else "",
    )


def nics(raw: Any, guest: str) -> list[Nic]:
    """Check a guest's NIC list (NIC ids unique; one vnet setting per bridge)."""
    if not isinstance(raw, list):
        raise bad("'nics' must be a list")
    checked = [nic(n, guest) for n in raw]
    ids = [n.nic_id for n in checked]
    if len(set(ids)) != len(ids):
        raise bad("NIC ids must be unique")
    same_bridge(checked)
    return checked


def same_bridge(checked: list[Nic]) -> None:
    """Refuse two different vnet settings on one bridge (they would fight over it)."""
    seen: dict[str, Vnet] = {}
    for n in checked:
        other = seen.setdefault(n.vnet.bridge, n.vnet)
        if _device_part(other) != _device_part(n.vnet):
            raise bad(f"bridge {n.vnet.bridge} is given two different vnet settings")


def _device_part(v: Vnet) -> tuple[Any, ...]:
    return (v.driver, v.phydev, v.vlan_id, v.mtu, v.vxlan_mode, v.group)


@dataclass(frozen=True)
class HostNet:
    """The host's underlay: its address, its cluster's other hosts and EVPN settings."""

    address: str | None
    peers: tuple[str, ...]
    asn: int
    route_reflector: str | None
    frr_name: str | None
    uplink: str | None  # the device that carries `address` (found at run time when None)


def host_net(raw: Any) -> HostNet:
    """Check a "network" (host_net) object; {} is a host without an underlay."""
    raw = _object(raw if raw is not None else {}, "'network'")
    mine = address(raw["address"], "network address") if _optional(raw, "address") else None
    peers_raw = raw.get("peers") or []
    if not isinstance(peers_raw, list):
        raise bad("network peers must be a list of addresses")
    peers = tuple(dict.fromkeys(address(p, "a network peer") for p in peers_raw))
    rr = _optional(raw, "route_reflector")
    frr_name = _optional(raw, "frr_name")
    if frr_name is not None and (not isinstance(frr_name, str) or not FRR_NAME.fullmatch(frr_name)):
        raise bad(f"network frr_name must be 1-32 of A-Z a-z 0-9 _ -, not {frr_name!r:.40}")
    uplink = _optional(raw, "uplink")
    return HostNet(
        address=mine,
        peers=tuple(p for p in peers if p != mine),
        asn=number(raw.get("asn") or DEFAULT_ASN, "network asn", 1, 4_294_967_295),
        route_reflector=None if rr is None else address(rr, "network route_reflector"),
        frr_name=frr_name,
        uplink=None if uplink is None else ifname(uplink, "network uplink"),
    )


def underlay_address(host: HostNet, v: Vnet) -> str:
    """Return the host's address for a vxlan/evpn vnet (it must have one)."""
    if host.address is None:
        raise bad(f"a {v.driver} vnet needs the host's underlay address (network.address)")
    return host.address
