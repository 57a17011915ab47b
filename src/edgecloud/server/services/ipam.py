"""IPAM: take and give back addresses of a vnet's ranges, never the same one twice.

Every allocation first locks the vnet row (FOR UPDATE on PostgreSQL; on SQLite every
writer already holds the database's write lock), then picks the lowest free index; the
unique (vnet, range, index) constraint is the last line of defence.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.db.models import AddressRange, Lease, Vnet, now
from edgecloud.server.errors import Conflict, Exhausted, InvalidInput, NotFound
from edgecloud.server.services import quotas
from edgecloud.server.services.address_ranges import RangeSpec, address_at, first_free, index_of


def range_spec(ar: AddressRange) -> RangeSpec:
    """Return the arithmetic view of a stored range."""
    return RangeSpec(
        type=ar.type,  # type: ignore[arg-type]
        size=ar.size,
        ip=ar.ip,
        mac=ar.mac,
        global_prefix=ar.global_prefix,
        ula_prefix=ar.ula_prefix,
        ip6=ar.ip6,
        prefix_length=ar.prefix_length,
    )


def allocate(
    session: Session,
    *,
    vnet_id: int,
    owner_id: int,
    group_id: int,
    request: wire.LeaseRequest,
    vm_id: int | None = None,
) -> Lease:
    """Take one address (the asked one, or the lowest free) and charge the owner's quota."""
    session.execute(select(Vnet.id).where(Vnet.id == vnet_id).with_for_update())
    ranges = list(
        session.scalars(
            select(AddressRange).where(AddressRange.vnet_id == vnet_id).order_by(AddressRange.ar_id)
        )
    )
    if request.ar_id is not None:
        ranges = [r for r in ranges if r.ar_id == request.ar_id]
        if not ranges:
            raise InvalidInput("ar_id", f"vnet {vnet_id} has no address range {request.ar_id}")
    if not ranges:
        raise Exhausted(f"vnet {vnet_id} has no address ranges", field="vnet_id")
    ar, idx = _pick(session, vnet_id, ranges, request)
    quotas.charge(session, owner_id, group_id, quotas.Usage(leases=1))
    addr = address_at(range_spec(ar), idx)
    lease = Lease(
        vnet_id=vnet_id,
        ar_id=ar.ar_id,
        idx=idx,
        mac=addr.mac,
        ip=addr.ip,
        ip6=addr.ip6,
        ip6_global=addr.ip6_global,
        ip6_ula=addr.ip6_ula,
        state=request.state,
        vm_id=vm_id,
        owner_id=owner_id,
        created_at=now(),
    )
    session.add(lease)
    session.flush()
    return lease


def _pick(
    session: Session, vnet_id: int, ranges: list[AddressRange], request: wire.LeaseRequest
) -> tuple[AddressRange, int]:
    if request.ip is not None or request.mac is not None:
        return _pick_given(session, vnet_id, ranges, request)
    for ar in ranges:
        used = session.scalars(
            select(Lease.idx)
            .where(Lease.vnet_id == vnet_id, Lease.ar_id == ar.ar_id)
            .order_by(Lease.idx)
        ).all()
        idx = first_free(used, ar.size)
        if idx is not None:
            return ar, idx
    total = sum(r.size for r in ranges)
    raise Exhausted(f"vnet {vnet_id}: all {total} addresses are taken", field="vnet_id")


def _pick_given(
    session: Session, vnet_id: int, ranges: list[AddressRange], request: wire.LeaseRequest
) -> tuple[AddressRange, int]:
    field = "ip" if request.ip is not None else "mac"
    for ar in ranges:
        idx = index_of(range_spec(ar), ip=request.ip, mac=request.mac)
        if idx is None:
            continue
        taken = session.scalar(
            select(Lease.id).where(
                Lease.vnet_id == vnet_id, Lease.ar_id == ar.ar_id, Lease.idx == idx
            )
        )
        if taken is not None:
            raise Conflict(f"{field}: {getattr(request, field)} is already leased", field=field)
        return ar, idx
    raise InvalidInput(field, f"{getattr(request, field)} is not in any range of vnet {vnet_id}")


def release(session: Session, *, vnet_id: int, lease_id: int) -> None:
    """Give an address back."""
    lease = session.get(Lease, lease_id)
    if lease is None or lease.vnet_id != vnet_id:
        raise NotFound(f"lease {lease_id} of vnet {vnet_id} does not exist", field="lease_id")
    session.delete(lease)
    session.flush()


def release_vm(session: Session, vm_id: int) -> None:
    """Give back every address a VM holds."""
    for lease in session.scalars(select(Lease).where(Lease.vm_id == vm_id)):
        session.delete(lease)
    session.flush()


def lease_wire(lease: Lease) -> wire.Lease:
    """Render a lease."""
    return wire.Lease(
        id=lease.id,
        vnet_id=lease.vnet_id,
        ar_id=lease.ar_id,
        mac=lease.mac,
        ip=lease.ip,
        ip6=lease.ip6,
        ip6_global=lease.ip6_global,
        ip6_ula=lease.ip6_ula,
        state=lease.state,
        vm_id=lease.vm_id,
        owner_id=lease.owner_id,
    )
