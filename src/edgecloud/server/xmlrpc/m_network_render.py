"""VNET documents (one, or a pool built with a fixed number of queries), OpenNebula's vnet
and address range templates read into our wire bodies, and the template helpers the
security group family (m_secgroups_render) shares.

Conventions where OpenNebula and we differ:
- VN_MAD `dummy` is our `bridge` driver; the template keeps VN_MAD = "dummy" to say so.
- VNETs follow vnet.xsd: an AR's own attributes (GATEWAY, DNS, MTU) are kept for the
  lifecycle but have no place in the document.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.db.models import AddressRange, ClusterVnet, Lease, SecurityGroup, Vnet
from edgecloud.server.errors import Conflict, InvalidInput, NotFound
from edgecloud.server.lifecycle.network import VNI_BASE
from edgecloud.server.services import ipam
from edgecloud.server.services.address_ranges import address_at, ranges_overlap, validate_range
from edgecloud.server.services.reservations import PARENT
from edgecloud.server.services.vnets import network_of_template
from edgecloud.server.xmlrpc.core import wire_body
from edgecloud.server.xmlrpc.xml import attributes, el, fields, ids, permissions, template

MAD_OF_DRIVER = {"bridge": "bridge", "vlan": "802.1Q", "vxlan": "vxlan", "evpn": "evpn"}
DRIVER_OF_MAD = {"bridge": "bridge", "dummy": "bridge", "802.1q": "vlan", "vxlan": "vxlan"}
DRIVER_OF_MAD |= {"evpn": "evpn"}
PARENT_AR = "PARENT_AR_ID"
# Attributes of an AR that info documents derive: never stored from a template.
DERIVED_AR = frozenset(
    {"AR_ID", "ALLOCATED", "USED_LEASES", "LEASES", "NEXT_INDEX", "MAC_END", "IP_END"}
    | {"IP6_ULA", "IP6_ULA_END", "IP6_GLOBAL", "IP6_GLOBAL_END", "IP6_END", "PARENT_NETWORK_AR_ID"}
)
FIXED_AR = frozenset({"TYPE", "SIZE", "IP", "MAC", "GLOBAL_PREFIX", "ULA_PREFIX", "IP6"})
FIXED_AR |= {"PREFIX_LENGTH"}


# --- templates in ----------------------------------------------------------------------
def parse(text: str, name: str = "template") -> dict[str, Any]:
    """A template (OpenNebula syntax or XML) as attributes: upper-case keys, AR/RULE lists."""
    return attributes(text, field=name)


def vectors(attrs: dict[str, Any], name: str, *marks: str) -> list[dict[str, str]]:
    """The `name` vectors of a template; a template that is one such vector (pyone sends
    {"AR": {...}} as <AR>...</AR>) when it has one of `marks`."""
    found = attrs.get(name)
    if found is None:
        found = [attrs] if any(m in attrs for m in marks) else []
    items = found if isinstance(found, list) else [found]
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            raise InvalidInput(f"{name}[{index}]", f"must be a vector: {name} = [ KEY = value ]")
    return items


def single(value: Any, name: str) -> str:
    """A single-valued attribute as text."""
    if isinstance(value, list | dict):
        raise InvalidInput(name, "must be given once, as a single value")
    return str(value).strip()


def number(value: Any, name: str) -> int:
    """An integer attribute."""
    try:
        return int(single(value, name))
    except ValueError:
        raise InvalidInput(name, f"'{value}' is not an integer") from None


def id_list(value: Any, name: str) -> list[int]:
    """'0,100' as [0, 100]."""
    return [number(part, name) for part in single(value, name).split(",") if part.strip()]


def range_in(vector: Mapping[str, str], name: str) -> tuple[wire.AddressRangeIn, dict[str, Any]]:
    """An AR vector as our range and the AR's other attributes (GATEWAY, DNS, ...)."""
    kind = vector.get("TYPE", "").strip().upper()
    if not kind:
        raise InvalidInput(f"{name}.TYPE", "missing TYPE for the address range")
    if not vector.get("SIZE", "").strip():
        raise InvalidInput(f"{name}.SIZE", "missing SIZE for the address range")
    values: dict[str, Any] = {"type": kind, "size": number(vector["SIZE"], f"{name}.SIZE")}
    for key in ("IP", "MAC", "GLOBAL_PREFIX", "ULA_PREFIX", "IP6", "PREFIX_LENGTH"):
        value = vector.get(key, "").strip()
        if value and key == "PREFIX_LENGTH":
            values["prefix_length"] = number(value, f"{name}.{key}")
        elif value:
            values[key.lower()] = value
    return wire_body(wire.AddressRangeIn, **values), range_extras(vector)


def range_extras(vector: Mapping[str, str]) -> dict[str, str]:
    """An AR vector's own attributes: not its addresses, not what documents derive."""
    return {k: v for k, v in vector.items() if k not in DERIVED_AR and k not in FIXED_AR}


# --- address ranges in the store ------------------------------------------------------
def range_row(session: Session, vnet_id: int, ar_id: int) -> AddressRange:
    """A vnet's range (the caller's right on the vnet is checked before)."""
    ar = session.scalar(
        select(AddressRange).where(AddressRange.vnet_id == vnet_id, AddressRange.ar_id == ar_id)
    )
    if ar is None:
        raise NotFound(f"vnet {vnet_id} has no address range {ar_id}", field="AR_ID")
    return ar


def set_range_attributes(ar: AddressRange, extra: dict[str, str], *, merge: bool) -> None:
    """Keep an AR's own attributes (GATEWAY, DNS, MTU: the lifecycle reads them); merged
    into the present ones, an empty value removing one, or replacing them."""
    merged = {**ar.template, **extra} if merge else dict(extra)
    ar.template = {k: v for k, v in merged.items() if v != ""}


def resize(session: Session, row: Vnet, ar: AddressRange, size: int) -> None:
    """Grow or shrink a range, as the checks of a new range and its leases allow."""
    if PARENT in row.template:
        raise InvalidInput("SIZE", "a reservation keeps its size")
    spec = validate_range(replace(ipam.range_spec(ar), size=size), vnet_id=row.id, ar_id=ar.ar_id)
    top = session.scalar(
        select(func.max(Lease.idx)).where(Lease.vnet_id == row.id, Lease.ar_id == ar.ar_id)
    )
    if top is not None and top >= size:
        raise Conflict(f"SIZE: lease {top} of range {ar.ar_id} is in use", field="SIZE")
    others = select(AddressRange).where(
        AddressRange.vnet_id == row.id, AddressRange.ar_id != ar.ar_id
    )
    for other in session.scalars(others):
        reason = ranges_overlap(spec, ipam.range_spec(other))
        if reason:
            raise Conflict(f"SIZE: {reason} with range {other.ar_id}", field="SIZE")
    network = network_of_template(row.template)
    last = address_at(spec, size - 1).ip
    if network is not None and last is not None and ipaddress.IPv4Address(last) not in network:
        raise InvalidInput("SIZE", f"{last} is outside the vnet's network {network}")
    ar.size = size


def reservations_of(session: Session, vnet_id: int, ar_id: int) -> list[tuple[int, int, int]]:
    """The reservations made from one range: (vnet id, first IPv4 as a number, size)."""
    children = select(Vnet.id, Vnet.template).where(
        Vnet.template[PARENT].as_string() == str(vnet_id)
    )
    out = []
    for child_id, attrs in session.execute(children).all():
        ar = session.scalars(select(AddressRange).where(AddressRange.vnet_id == child_id)).first()
        if str(attrs.get(PARENT_AR, "0")) == str(ar_id) and ar is not None and ar.ip:
            out.append((child_id, int(ipaddress.IPv4Address(ar.ip)), ar.size))
    return out


def reserved_by(session: Session, lease: Lease) -> int | None:
    """The reservation (vnet id) a lease of its parent is held for, if it is."""
    if lease.ip is None:
        return None
    number = int(ipaddress.IPv4Address(lease.ip))
    for child_id, first, size in reservations_of(session, lease.vnet_id, lease.ar_id):
        if first <= number < first + size:
            return child_id
    return None


# --- vnet documents --------------------------------------------------------------------
@dataclass
class VnetParts:
    """What a VNET document needs beyond its row, for a set of vnets, in 4 or 5 queries."""

    clusters: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    ranges: dict[int, list[AddressRange]] = field(default_factory=lambda: defaultdict(list))
    used: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # count, max
    total: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    vms: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    leases: dict[tuple[int, int], list[Lease]] | None = None

    @classmethod
    def load(cls, session: Session, vnet_ids: Select[Any], *, leases: bool) -> VnetParts:
        """Everything of the vnets `vnet_ids` selects (a SELECT of ids)."""
        parts = cls()
        links = select(ClusterVnet.vnet_id, ClusterVnet.cluster_id)
        for vnet_id, cluster_id in session.execute(
            links.where(ClusterVnet.vnet_id.in_(vnet_ids)).order_by(ClusterVnet.cluster_id)
        ):
            parts.clusters[vnet_id].append(cluster_id)
        ranges = select(AddressRange).where(AddressRange.vnet_id.in_(vnet_ids))
        for ar in session.scalars(ranges.order_by(AddressRange.vnet_id, AddressRange.ar_id)):
            parts.ranges[ar.vnet_id].append(ar)
        counts = select(Lease.vnet_id, Lease.ar_id, func.count(), func.max(Lease.idx))
        for vnet_id, ar_id, count, top in session.execute(
            counts.where(Lease.vnet_id.in_(vnet_ids)).group_by(Lease.vnet_id, Lease.ar_id)
        ):
            parts.used[(vnet_id, ar_id)] = (count, top)
            parts.total[vnet_id] += count
        vms = select(Lease.vnet_id, Lease.vm_id).distinct().where(Lease.vm_id.is_not(None))
        for vnet_id, vm_id in session.execute(
            vms.where(Lease.vnet_id.in_(vnet_ids)).order_by(Lease.vnet_id, Lease.vm_id)
        ):
            parts.vms[vnet_id].append(int(vm_id or 0))
        if leases:
            parts.leases = defaultdict(list)
            rows = select(Lease).where(Lease.vnet_id.in_(vnet_ids)).order_by(Lease.idx)
            for lease in session.scalars(rows):
                parts.leases[(lease.vnet_id, lease.ar_id)].append(lease)
        return parts


def vn_mad(row: Vnet) -> str:
    """OpenNebula's VN_MAD of a vnet."""
    if row.driver == "bridge" and row.template.get("VN_MAD") == "dummy":
        return "dummy"
    return MAD_OF_DRIVER.get(row.driver, row.driver)


def vnet_template(row: Vnet) -> dict[str, Any]:
    """The TEMPLATE: the driver attributes as OpenNebula keeps them, then the vnet's own."""
    out: dict[str, Any] = {"BRIDGE": row.bridge or f"ecbr{row.id}", "BRIDGE_TYPE": "linux"}
    if row.phydev:
        out["PHYDEV"] = row.phydev
    out["SECURITY_GROUPS"] = ",".join(str(g) for g in row.security_groups)
    if row.vlan_id is not None:
        out["VLAN_ID"] = str(row.vlan_id)
    out["VN_MAD"] = vn_mad(row)
    out.update((k, v) for k, v in row.template.items() if k not in out)
    return out


def owned(tag: str, row: Vnet | SecurityGroup, uname: str, gname: str) -> ET.Element:
    """A VNET or SECURITY_GROUP element with its ids, names and PERMISSIONS."""
    node = fields(ET.Element(tag), [("ID", row.id), ("UID", row.owner_id), ("GID", row.group_id)])
    fields(node, [("UNAME", uname), ("GNAME", gname), ("NAME", row.name)])
    node.append(permissions(row.perms))
    return node


def vnet_doc(row: Vnet, uname: str, gname: str, parts: VnetParts) -> ET.Element:
    """A VNET: as one.vn.info sends it when parts has leases, else as in a VNET_POOL."""
    node = owned("VNET", row, uname, gname)
    node.append(ids("CLUSTERS", parts.clusters.get(row.id, [])))
    automatic = row.vlan_id is None and row.driver in ("vxlan", "evpn")
    vlan = VNI_BASE + row.id if automatic else row.vlan_id
    fields(
        node,
        [
            ("BRIDGE", row.bridge or f"ecbr{row.id}"),
            ("BRIDGE_TYPE", "linux"),
            ("STATE", 1),
            ("PREV_STATE", 1),
            ("PARENT_NETWORK_ID", row.template.get(PARENT, "")),
            ("TEMPLATE_ID", -1),
            ("VN_MAD", vn_mad(row)),
            ("PHYDEV", row.phydev),
            ("VLAN_ID", vlan),
            ("OUTER_VLAN_ID", ""),
            ("VLAN_ID_AUTOMATIC", automatic),
            ("OUTER_VLAN_ID_AUTOMATIC", 0),
            ("USED_LEASES", parts.total.get(row.id, 0)),
        ],
    )
    node.append(ids("VROUTERS", []))
    node.append(ids("UPDATED_VMS", parts.vms.get(row.id, [])))
    for tag in ("OUTDATED_VMS", "UPDATING_VMS", "ERROR_VMS"):
        node.append(ids(tag, []))
    node.append(template("TEMPLATE", vnet_template(row)))
    pool = el("AR_POOL")
    for ar in parts.ranges.get(row.id, []):
        pool.append(_ar(row, ar, parts))
    node.append(pool)
    return node


def _ar(row: Vnet, ar: AddressRange, parts: VnetParts) -> ET.Element:
    count, top = parts.used.get((row.id, ar.ar_id), (0, -1))
    node = fields(el("AR"), [("AR_ID", ar.ar_id)])
    if ar.global_prefix:
        node.append(el("GLOBAL_PREFIX", ar.global_prefix))
    if ar.ip:
        node.append(el("IP", ar.ip))
    parent_ar = row.template.get(PARENT_AR) if row.template.get(PARENT) else None
    fields(node, [("MAC", ar.mac), ("NEXT_INDEX", (top + 1) % ar.size)])
    if parent_ar is not None:
        node.append(el("PARENT_NETWORK_AR_ID", parent_ar))
    fields(node, [("SIZE", ar.size), ("TYPE", ar.type)])
    if ar.ula_prefix:
        node.append(el("ULA_PREFIX", ar.ula_prefix))
    if parts.leases is None:
        return node  # a pool's ARs stop here (vnet_pool.xsd)
    spec = ipam.range_spec(ar)
    first, last = address_at(spec, 0), address_at(spec, ar.size - 1)
    node.append(el("MAC_END", last.mac))
    for tag, start, end in (
        ("IP", first.ip, last.ip),
        ("IP6_ULA", first.ip6_ula, last.ip6_ula),
        ("IP6_GLOBAL", first.ip6_global, last.ip6_global),
        ("IP6", first.ip6, last.ip6),
    ):
        if start is None:
            continue
        if tag != "IP":
            node.append(el(tag, start))
        node.append(el(f"{tag}_END", end))
    node.append(el("USED_LEASES", count))
    leases = el("LEASES")
    for lease in parts.leases.get((row.id, ar.ar_id), []):
        leases.append(_lease(lease))
    node.append(leases)
    return node


def _lease(lease: Lease) -> ET.Element:
    node = el("LEASE")
    for tag, value in (
        ("IP", lease.ip),
        ("IP6", lease.ip6),
        ("IP6_GLOBAL", lease.ip6_global),
        ("IP6_ULA", lease.ip6_ula),
        ("MAC", lease.mac),
    ):
        if value:
            node.append(el(tag, value))
    node.append(el("VM", lease.vm_id if lease.vm_id is not None else -1))
    return node
