"""Virtual networks and their address ranges."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import AddressRange, ClusterVnet, Lease, SecurityGroup, Vnet
from edgecloud.server.errors import Conflict, InvalidInput, NotFound
from edgecloud.server.services import ipam, objects, reservations
from edgecloud.server.services.address_ranges import RangeSpec, ranges_overlap, validate_range
from edgecloud.server.services.clusters import cluster_ids_of, set_cluster_links
from edgecloud.server.services.objects import parse_template_input
from edgecloud.server.services.resource import OwnedResource


class Vnets(OwnedResource[Vnet, wire.VnetCreate, wire.VnetUpdate, wire.Vnet]):
    """Use cases of virtual networks."""

    kind = "NET"
    model = Vnet
    read_type = wire.Vnet

    def build(self, session: Session, principal: Principal, body: wire.VnetCreate) -> Vnet:
        """Return a new vnet row."""
        _require_secgroups(session, body.security_groups, "security_groups")
        if body.driver == "vlan" and body.vlan_id is None:
            raise InvalidInput("vlan_id", "the vlan driver needs a vlan_id (1..4094)")
        if body.driver == "vlan" and (body.vlan_id or 0) > 4094:
            raise InvalidInput("vlan_id", "802.1Q ids go from 1 to 4094")
        template = parse_template_input(body.template)
        network_of_template(template)  # a bad NETWORK_ADDRESS / MASK / GATEWAY is a 422 now
        return Vnet(
            name=body.name,
            driver=body.driver,
            bridge=body.bridge,
            phydev=body.phydev,
            vlan_id=body.vlan_id,
            security_groups=list(dict.fromkeys(body.security_groups)),
            template=template,
        )

    def after_create(
        self, session: Session, principal: Principal, row: Vnet, body: wire.VnetCreate
    ) -> None:
        """Link clusters, name the bridge, add the ranges."""
        set_cluster_links(session, ClusterVnet, "vnet_id", row.id, body.cluster_ids)
        if not row.bridge:
            row.bridge = f"ecbr{row.id}"
        for index, ar in enumerate(body.address_ranges):
            self._add_range(session, row, ar, field=f"address_ranges[{index}]")
        session.flush()

    def change(
        self, session: Session, principal: Principal, row: Vnet, body: wire.VnetUpdate
    ) -> None:
        """Change bridge, device, security groups or attributes."""
        if body.bridge is not None:
            row.bridge = body.bridge or f"ecbr{row.id}"
        if body.phydev is not None:
            row.phydev = body.phydev
        if body.security_groups is not None:
            _require_secgroups(session, body.security_groups, "security_groups")
            row.security_groups = list(dict.fromkeys(body.security_groups))
        if body.template is not None:
            template = parse_template_input(body.template)
            network_of_template(template)
            row.template = template

    def before_delete(self, session: Session, principal: Principal, row: Vnet) -> None:
        """Refuse while addresses are leased."""
        used = session.scalar(select(func.count()).where(Lease.vnet_id == row.id))
        if used:
            raise Conflict(f"vnet {row.id} still has {used} lease(s)", field="id")
        reservations.give_back(session, row)

    def reserve(
        self, session: Session, principal: Principal, vnet_id: int, body: wire.ReserveRequest
    ) -> wire.Vnet:
        """Reserve a block of the vnet's addresses (USE right) as a new vnet of the caller's."""
        objects.require_create(principal, self.kind)
        parent = self.load(session, principal, vnet_id, "USE")
        child = reservations.reserve(session, principal, parent, body)
        return self.to_wire(session, child)

    def render(self, session: Session, row: Vnet) -> dict[str, Any]:
        """Add driver, bridge, clusters and ranges with their use counts."""
        return {
            "driver": row.driver,
            "bridge": row.bridge,
            "phydev": row.phydev,
            "vlan_id": row.vlan_id,
            "security_groups": row.security_groups,
            "cluster_ids": cluster_ids_of(session, ClusterVnet, "vnet_id", row.id),
            "address_ranges": _ranges(session, row.id),
        }

    # --- address ranges ----------------------------------------------------------
    def add_range(
        self, session: Session, principal: Principal, vnet_id: int, body: wire.AddressRangeIn
    ) -> wire.Vnet:
        """Add an address range (ADMIN right on the vnet)."""
        row = self.load(session, principal, vnet_id, "ADMIN")
        self._add_range(session, row, body, field="ar")
        session.flush()
        return self.to_wire(session, row)

    def _add_range(
        self, session: Session, row: Vnet, body: wire.AddressRangeIn, *, field: str
    ) -> None:
        existing = list(session.scalars(select(AddressRange).where(AddressRange.vnet_id == row.id)))
        ar_id = max((a.ar_id for a in existing), default=-1) + 1
        raw = RangeSpec(**body.model_dump())
        try:
            spec = validate_range(raw, vnet_id=row.id, ar_id=ar_id)
        except InvalidInput as exc:
            raise InvalidInput(
                exc.field.replace("ar", field, 1) if exc.field else field, exc.reason
            ) from exc
        network = network_of_template(row.template)
        if network is not None and spec.ip is not None:
            first = ipaddress.IPv4Address(spec.ip)
            last = first + (spec.size - 1)
            if first not in network or last not in network:
                raise InvalidInput(
                    f"{field}.ip",
                    f"{first}-{last} is outside the vnet's network {network}",
                )
        for other in existing:
            reason = ranges_overlap(spec, ipam.range_spec(other))
            if reason:
                raise Conflict(f"{field}: {reason} with range {other.ar_id}", field=field)
        session.add(AddressRange(vnet_id=row.id, ar_id=ar_id, **_spec_columns(spec)))

    def remove_range(
        self, session: Session, principal: Principal, vnet_id: int, ar_id: int
    ) -> wire.Vnet:
        """Remove an address range with no leases (ADMIN right)."""
        row = self.load(session, principal, vnet_id, "ADMIN")
        ar = session.scalar(
            select(AddressRange).where(AddressRange.vnet_id == vnet_id, AddressRange.ar_id == ar_id)
        )
        if ar is None:
            raise NotFound(f"vnet {vnet_id} has no address range {ar_id}", field="ar_id")
        used = session.scalar(
            select(func.count()).where(Lease.vnet_id == vnet_id, Lease.ar_id == ar_id)
        )
        if used:
            raise Conflict(f"address range {ar_id} still has {used} lease(s)", field="ar_id")
        session.delete(ar)
        session.flush()
        return self.to_wire(session, row)

    # --- leases ------------------------------------------------------------------
    def take_lease(
        self, session: Session, principal: Principal, vnet_id: int, body: wire.LeaseRequest
    ) -> wire.Lease:
        """Allocate (USE right) or hold (MANAGE right) an address for the caller."""
        self.load(session, principal, vnet_id, "MANAGE" if body.state == "hold" else "USE")
        lease = ipam.allocate(
            session,
            vnet_id=vnet_id,
            owner_id=principal.user_id,
            group_id=principal.group_id,
            request=body,
        )
        return ipam.lease_wire(lease)

    def leases(self, session: Session, principal: Principal, vnet_id: int) -> list[wire.Lease]:
        """List the vnet's leases."""
        self.load(session, principal, vnet_id, "USE")
        rows = session.scalars(select(Lease).where(Lease.vnet_id == vnet_id).order_by(Lease.id))
        return [ipam.lease_wire(x) for x in rows]

    def release_lease(
        self, session: Session, principal: Principal, vnet_id: int, lease_id: int
    ) -> None:
        """Give an address back: its owner, or whoever may MANAGE the vnet; not a VM's NIC."""
        lease = session.get(Lease, lease_id)
        right = "USE" if lease is not None and lease.owner_id == principal.user_id else "MANAGE"
        self.load(session, principal, vnet_id, right)
        if lease is not None and lease.vm_id is not None:
            raise Conflict(
                f"lease {lease_id} belongs to VM {lease.vm_id}; detach the NIC", field="lease_id"
            )
        ipam.release(session, vnet_id=vnet_id, lease_id=lease_id)


def network_of_template(template: dict[str, Any]) -> ipaddress.IPv4Network | None:
    """Return the vnet's IPv4 network (NETWORK_ADDRESS + NETWORK_MASK) if it names one.

    Raises InvalidInput naming the attribute when an address or mask is malformed, or the
    GATEWAY lies outside the network.
    """
    address = template.get("NETWORK_ADDRESS")
    for key in ("GATEWAY", "DNS"):
        for value in str(template.get(key, "")).split():
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise InvalidInput(f"template.{key}", f"'{value}' is not an IP address") from None
    if not address:
        return None
    mask = template.get("NETWORK_MASK", "255.255.255.0")
    try:
        network = ipaddress.IPv4Network(f"{address}/{mask}", strict=False)
    except ValueError as exc:
        raise InvalidInput("template.NETWORK_ADDRESS", f"not an IPv4 network: {exc}") from None
    gateway = template.get("GATEWAY")
    if gateway and ipaddress.ip_address(str(gateway).split()[0]) not in network:
        raise InvalidInput("template.GATEWAY", f"{gateway} is outside the network {network}")
    return network


def _spec_columns(spec: RangeSpec) -> dict[str, Any]:
    return {
        "type": spec.type,
        "size": spec.size,
        "ip": spec.ip,
        "mac": spec.mac,
        "global_prefix": spec.global_prefix,
        "ula_prefix": spec.ula_prefix,
        "ip6": spec.ip6,
        "prefix_length": spec.prefix_length,
    }


def _ranges(session: Session, vnet_id: int) -> list[wire.AddressRange]:
    used = dict(
        session.execute(
            select(Lease.ar_id, func.count()).where(Lease.vnet_id == vnet_id).group_by(Lease.ar_id)
        ).all()
    )
    rows = session.scalars(
        select(AddressRange).where(AddressRange.vnet_id == vnet_id).order_by(AddressRange.ar_id)
    )
    return [
        wire.AddressRange(
            ar_id=r.ar_id, used=used.get(r.ar_id, 0), **_spec_columns(ipam.range_spec(r))
        )
        for r in rows
    ]


def _require_secgroups(session: Session, ids: list[int], field: str) -> None:
    for index, sg in enumerate(ids):
        if session.get(SecurityGroup, sg) is None:
            raise InvalidInput(f"{field}[{index}]", f"security group {sg} does not exist")
