"""A VM's NICs resolved into what its host needs to plug them in (see edgecloud.node.net).

The lifecycle sends this with the guest's spec: each NIC with its vnet's driver settings,
its address and its security groups' rules (a rule naming another group arrives as the
addresses of that group's NICs), and the host's underlay (address, cluster peers, EVPN).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.db.models import AddressRange, Cluster, Host, SecurityGroup, Vm, Vnet

DEFAULT_ASN = 65000
DEFAULT_PREFIX = 24
# VNIs of vxlan/evpn vnets without a vlan_id: this base plus the vnet id.
VNI_BASE = 10_000
# Guests on a VXLAN leave room for its 50 bytes of headers on a 1500-byte underlay.
VXLAN_MTU = 1450


def bridge_name(vnet: Vnet) -> str:
    """Return the vnet's bridge: as configured, else ecbr<id> (fits the 15-char limit)."""
    return vnet.bridge or f"ecbr{vnet.id}"


def vni(vnet: Vnet) -> int:
    """Return the VXLAN id of a vxlan/evpn vnet."""
    return vnet.vlan_id if vnet.vlan_id is not None else VNI_BASE + vnet.id


def _attr(vnet: Vnet, ar: AddressRange | None, key: str) -> Any:
    """Return an attribute from the range's template, else the vnet's (OpenNebula order)."""
    if ar is not None and key in ar.template:
        return ar.template[key]
    return vnet.template.get(key)


def _yes(value: Any) -> bool:
    return str(value).strip().lower() in ("yes", "true", "1", "on")


def _prefix(vnet: Vnet, ar: AddressRange | None) -> int:
    mask = _attr(vnet, ar, "NETWORK_MASK")
    if mask:
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        except ValueError:
            pass
    if ar is not None and ar.prefix_length and ar.type in ("IP4",):
        return ar.prefix_length
    return DEFAULT_PREFIX


def ports(text: str | None) -> list[list[int]] | None:
    """Parse "22,80:90" into [[22, 22], [80, 90]] (validated when the group was saved)."""
    if not text:
        return None
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, _, high = part.partition(":")
        out.append([int(low), int(high or low)])
    return out or None


def group_addresses(session: Session, group_id: int) -> list[str]:
    """Return the addresses (/32, /128) of every live NIC in a security group."""
    found: list[str] = []
    rows = session.execute(select(Vm.template).where(Vm.state.not_in((6,)))).scalars()
    for template in rows:
        for nic in template.get("NIC", []) or []:
            groups = {g for g in str(nic.get("SECURITY_GROUPS", "")).split(",") if g}
            if str(group_id) not in groups:
                continue
            if nic.get("IP"):
                found.append(f"{nic['IP']}/32")
            for key in ("IP6", "IP6_GLOBAL"):
                if nic.get(key):
                    found.append(f"{nic[key]}/128")
    return sorted(set(found))


def rules_of(session: Session, group_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Return the rules of these groups, with group references expanded to addresses."""
    rules: list[dict[str, Any]] = []
    expanded: dict[int, list[str]] = {}
    for group_id in dict.fromkeys(group_ids):
        group = session.get(SecurityGroup, group_id)
        if group is None:
            continue
        for rule in group.rules:
            cidrs: list[str] | None = None
            if rule.get("cidr"):
                cidrs = [str(ipaddress.ip_network(rule["cidr"], strict=False))]
            elif rule.get("security_group_id") is not None:
                ref = int(rule["security_group_id"])
                if ref not in expanded:
                    expanded[ref] = group_addresses(session, ref)
                cidrs = expanded[ref]
            rules.append(
                {
                    "direction": rule.get("direction", "inbound"),
                    "protocol": rule.get("protocol", "ALL"),
                    "ports": ports(rule.get("range")),
                    "icmp_type": rule.get("icmp_type"),
                    "cidrs": cidrs,
                }
            )
    return rules


def nic_of(session: Session, nic: dict[str, Any]) -> dict[str, Any] | None:
    """Return one NIC of a VM's template resolved for its host (None if its vnet is gone)."""
    vnet = session.get(Vnet, int(nic["NETWORK_ID"]))
    if vnet is None:
        return None
    ar = session.scalars(
        select(AddressRange).where(
            AddressRange.vnet_id == vnet.id, AddressRange.ar_id == int(nic.get("AR_ID", 0))
        )
    ).first()
    groups = [int(g) for g in str(nic.get("SECURITY_GROUPS", "")).split(",") if g]
    mtu = _attr(vnet, ar, "MTU") or (VXLAN_MTU if vnet.driver in ("vxlan", "evpn") else None)
    return {
        "nic_id": int(nic.get("NIC_ID", 0)),
        "mac": nic["MAC"],
        "ip": nic.get("IP"),
        "prefix": _prefix(vnet, ar),
        "gateway": _attr(vnet, ar, "GATEWAY"),
        "dns": _attr(vnet, ar, "DNS"),
        "ip6": nic.get("IP6_GLOBAL") or nic.get("IP6"),
        "prefix6": 64 if (nic.get("IP6_GLOBAL") or nic.get("IP6")) else None,
        "model": str(nic.get("MODEL", "virtio")),
        "vnet": {
            "id": vnet.id,
            "name": vnet.name,
            "driver": vnet.driver,
            "bridge": bridge_name(vnet),
            "phydev": vnet.phydev,
            "vlan_id": vni(vnet) if vnet.driver in ("vxlan", "evpn") else vnet.vlan_id,
            "mtu": int(mtu) if mtu else None,
            "vxlan_mode": str(_attr(vnet, ar, "VXLAN_MODE") or "flood").lower(),
            "group": _attr(vnet, ar, "VXLAN_GROUP"),
            "public": _yes(_attr(vnet, ar, "PUBLIC")),
            "masquerade": _yes(_attr(vnet, ar, "MASQUERADE")),
        },
        "rules": rules_of(session, groups),
        "security_groups": groups,
    }


def host_net(session: Session, host: Host) -> dict[str, Any]:
    """Return a host's underlay: its address, its cluster's other hosts, EVPN settings."""
    members = session.execute(
        select(Host.id, Host.address, Host.name)
        .where(Host.cluster_id == host.cluster_id, Host.hypervisor != "fake")
        .order_by(Host.id)
    ).all()
    addresses = [a for a in (_ip(m.address or m.name) for m in members) if a]
    mine = _ip(host.address or host.name)
    cluster_template = _cluster_template(session, host.cluster_id)
    # Full mesh unless the cluster names a reflector: a reflector chosen for it (say its
    # first host) runs BGP only while it has EVPN guests, and routes stop at it otherwise.
    rr = cluster_template.get("EVPN_ROUTE_REFLECTOR") or None
    return {
        "address": mine,
        "peers": [a for a in addresses if a != mine],
        "asn": int(cluster_template.get("BGP_ASN", DEFAULT_ASN)),
        "route_reflector": rr,
        "frr_name": "ec-" + hashlib.sha256(f"{host.id}:{host.root}".encode()).hexdigest()[:8],
    }


@functools.lru_cache(maxsize=4096)
def _ip(address: str) -> str | None:
    """Return the host's address as an IP (a name is looked up once; None if unknown)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(found[0][4][0]) if found else None


def _cluster_template(session: Session, cluster_id: int) -> dict[str, Any]:
    cluster = session.get(Cluster, cluster_id)
    return dict(cluster.template) if cluster is not None else {}


def network_of(
    session: Session, vm: Vm, host: Host | None, nics: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return {"nics": [...], "host": {...}} for a VM on a host ({} without NICs); `nics`
    replaces the VM's own (a migration to another cluster's networks)."""
    raw = (vm.template.get("NIC", []) or []) if nics is None else nics
    if not raw or host is None:
        return {}
    nics = [n for n in (nic_of(session, dict(nic)) for nic in raw) if n is not None]
    return {"nics": nics, "host": host_net(session, host)}
