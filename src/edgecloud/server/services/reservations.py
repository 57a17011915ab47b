"""Reservations: a block of a vnet's addresses held for one user, as a vnet of their own.

As OpenNebula's one.vn.reserve: the parent keeps the block as held leases (nobody else
gets them), the reservation is a new vnet owned by the caller with one address range over
the block, the parent's driver settings and PARENT_NETWORK_ID. Deleting the reservation
gives the block back to the parent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import AddressRange, ClusterVnet, Lease, Vnet, now
from edgecloud.server.errors import Exhausted, InvalidInput
from edgecloud.server.services import ipam, quotas
from edgecloud.server.services.address_ranges import address_at, index_of

PARENT = "PARENT_NETWORK_ID"


def _block(session: Session, parent: Vnet, body: wire.ReserveRequest) -> tuple[AddressRange, int]:
    """Return the range and first index of `size` free consecutive addresses."""
    ranges = session.scalars(
        select(AddressRange).where(AddressRange.vnet_id == parent.id).order_by(AddressRange.ar_id)
    ).all()
    if body.ar_id is not None:
        ranges = [r for r in ranges if r.ar_id == body.ar_id]
        if not ranges:
            raise InvalidInput("ar_id", f"vnet {parent.id} has no address range {body.ar_id}")
    for ar in ranges:
        if ar.type != "IP4" or ar.ip is None:
            continue
        used = set(
            session.scalars(
                select(Lease.idx).where(Lease.vnet_id == parent.id, Lease.ar_id == ar.ar_id)
            )
        )
        if body.ip is not None:
            start = index_of(ipam.range_spec(ar), ip=body.ip, mac=None)
            if start is None:
                continue
            if start + body.size > ar.size or used & set(range(start, start + body.size)):
                raise InvalidInput("ip", f"{body.size} addresses from {body.ip} are not all free")
            return ar, start
        run = 0
        for idx in range(ar.size):
            run = 0 if idx in used else run + 1
            if run == body.size:
                return ar, idx - body.size + 1
    if body.ip is not None:
        raise InvalidInput("ip", f"{body.ip} is not in an IPv4 range of vnet {parent.id}")
    raise Exhausted(f"vnet {parent.id} has no {body.size} free consecutive addresses", field="size")


def reserve(
    session: Session, principal: Principal, parent: Vnet, body: wire.ReserveRequest
) -> Vnet:
    """Hold the block in the parent and return the new vnet (flushed, owned by the caller)."""
    session.execute(select(Vnet.id).where(Vnet.id == parent.id).with_for_update())
    ar, start = _block(session, parent, body)
    spec = ipam.range_spec(ar)
    quotas.charge(session, principal.user_id, principal.group_id, quotas.Usage(leases=body.size))
    first = address_at(spec, start)
    for idx in range(start, start + body.size):
        addr = address_at(spec, idx)
        session.add(
            Lease(
                vnet_id=parent.id,
                ar_id=ar.ar_id,
                idx=idx,
                mac=addr.mac,
                ip=addr.ip,
                state="hold",
                owner_id=principal.user_id,
                created_at=now(),
            )
        )
    child = Vnet(
        name=body.name or f"{parent.name}-reservation-{now()}-{start}",
        driver=parent.driver,
        bridge=parent.bridge,
        phydev=parent.phydev,
        vlan_id=parent.vlan_id,
        security_groups=list(parent.security_groups),
        template={**parent.template, PARENT: str(parent.id), "PARENT_AR_ID": str(ar.ar_id)},
        owner_id=principal.user_id,
        group_id=principal.group_id,
        perms=0o600,
    )
    session.add(child)
    session.flush()
    if body.name is None:
        child.name = f"{parent.name}-r{child.id}"
    session.add(
        AddressRange(
            vnet_id=child.id,
            ar_id=0,
            type="IP4",
            size=body.size,
            ip=first.ip,
            mac=first.mac,
            template={},
        )
    )
    for cluster_id in session.scalars(
        select(ClusterVnet.cluster_id).where(ClusterVnet.vnet_id == parent.id)
    ):
        session.add(ClusterVnet(cluster_id=cluster_id, vnet_id=child.id))
    session.flush()
    return child


def give_back(session: Session, child: Vnet) -> None:
    """Release the parent's held block of a reservation being deleted."""
    parent_id = child.template.get(PARENT)
    if parent_id is None:
        return
    ar = session.scalars(select(AddressRange).where(AddressRange.vnet_id == child.id)).first()
    if ar is None or ar.ip is None:
        return
    first = index_of(
        ipam.range_spec(
            session.scalars(
                select(AddressRange).where(
                    AddressRange.vnet_id == int(parent_id),
                    AddressRange.ar_id == int(child.template.get("PARENT_AR_ID", 0)),
                )
            ).one()
        ),
        ip=ar.ip,
        mac=None,
    )
    if first is None:
        return
    held: Any = session.scalars(
        select(Lease).where(
            Lease.vnet_id == int(parent_id),
            Lease.ar_id == int(child.template.get("PARENT_AR_ID", 0)),
            Lease.idx >= first,
            Lease.idx < first + ar.size,
            Lease.state == "hold",
            Lease.owner_id == child.owner_id,
        )
    )
    for lease in held:
        session.delete(lease)
