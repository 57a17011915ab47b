"""one.vn.* and one.vnpool.info onto the Vnets service (its permission checks decide;
documents: m_network_render); importing this module registers the security group family
(m_secgroups) too.

Differences from OpenNebula: one.vn.reserve makes a new vnet each time (NETWORK_ID, adding
to a reservation, and MAC are refused); hold/release take LEASE = [ IP ] or [ MAC ];
update_ar may grow or shrink SIZE (not below a used lease) and merges the AR's other
attributes (KEY = "" removes one: documents cannot show them), but TYPE, IP, MAC and the
IPv6 prefixes stay; vn.update cannot change VN_MAD or VLAN_ID.
"""

from __future__ import annotations

from sqlalchemy import select

from edgecloud.api import network as wire
from edgecloud.server.db.models import Lease, Vnet
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services.reservations import PARENT
from edgecloud.server.services.vnets import Vnets
from edgecloud.server.xmlrpc.core import Ctx, method, wire_body
from edgecloud.server.xmlrpc.m_network_common import names, register_owned, with_names
from edgecloud.server.xmlrpc.m_network_render import (
    DRIVER_OF_MAD,
    PARENT_AR,
    VnetParts,
    id_list,
    number,
    parse,
    range_extras,
    range_in,
    range_row,
    reservations_of,
    reserved_by,
    resize,
    set_range_attributes,
    single,
    vectors,
    vn_mad,
    vnet_doc,
    vnet_template,
)
from edgecloud.server.xmlrpc.pools import PoolFilter
from edgecloud.server.xmlrpc.xml import dumps, pool

vnets = Vnets()


@method("one.vn.allocate", str, int, defaults=(-1,), kind="allocate")
def vn_allocate(ctx: Ctx, text: str, cluster_id: int) -> int:
    """A vnet from its template, in the default cluster (-1) or the given one."""
    attrs = parse(text)
    name = single(attrs.pop("NAME", ""), "NAME")
    if not name:
        raise InvalidInput("NAME", "no NAME in the template")
    mad = single(attrs.pop("VN_MAD", ""), "VN_MAD")
    driver = DRIVER_OF_MAD.get(mad.lower())
    if driver is None:
        known = "bridge, 802.1Q, vxlan, evpn or dummy"
        raise InvalidInput("VN_MAD", f"'{mad}' is not a driver here ({known})" if mad else known)
    vlan = attrs.pop("VLAN_ID", None)
    groups = [0, *id_list(attrs.pop("SECURITY_GROUPS", ""), "SECURITY_GROUPS")]
    ranges = [range_in(v, f"AR[{i}]") for i, v in enumerate(vectors(attrs, "AR"))]
    attrs.pop("AR", None)
    attrs.pop("BRIDGE_TYPE", None)
    if mad.lower() == "dummy":
        attrs["VN_MAD"] = "dummy"
    body = wire_body(
        wire.VnetCreate,
        name=name,
        driver=driver,
        bridge=single(attrs.pop("BRIDGE", ""), "BRIDGE"),
        phydev=single(attrs.pop("PHYDEV", ""), "PHYDEV"),
        vlan_id=None if vlan in (None, "") else number(vlan, "VLAN_ID"),
        cluster_ids=[0 if cluster_id < 0 else cluster_id],
        address_ranges=[spec for spec, _ in ranges],
        security_groups=list(dict.fromkeys(groups)),
        template=attrs,
    )
    with ctx.frontend.store.write() as session:
        out = vnets.create(session, ctx.principal, body)
        for ar, (_, extra) in zip(out.address_ranges, ranges, strict=True):
            set_range_attributes(range_row(session, out.id, ar.ar_id), extra, merge=False)
    return out.id


@method("one.vn.info", int, bool, defaults=(False,))
def vn_info(ctx: Ctx, vnet_id: int, decrypt: bool) -> str:
    """One vnet with its ranges and leases."""
    with ctx.frontend.store.read() as session:
        row = vnets.load(session, ctx.principal, vnet_id)
        parts = VnetParts.load(session, select(Vnet.id).where(Vnet.id == vnet_id), leases=True)
        return dumps(vnet_doc(row, *names(session, row), parts))


@method("one.vnpool.info", int, int, int, defaults=(-2, -1, -1))
def vnpool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The vnets the caller may see, as the filter says (ranges without their leases)."""
    where = PoolFilter(flag, start, end)
    with ctx.frontend.store.read() as session:
        rows = session.execute(where.apply(with_names(Vnet), "NET", ctx.principal)).all()
        ids = where.apply(select(Vnet.id), "NET", ctx.principal)
        parts = VnetParts.load(session, ids, leases=False) if rows else VnetParts()
        return pool("VNET_POOL", (vnet_doc(r, u, g, parts) for r, u, g in rows))


@method("one.vn.update", int, str, int, defaults=(0,), kind="action")
def vn_update(ctx: Ctx, vnet_id: int, text: str, append: int) -> int:
    """Replace (or, append = 1, merge into) the template; BRIDGE, PHYDEV and
    SECURITY_GROUPS change the vnet; VN_MAD and VLAN_ID must stay as they are."""
    new = parse(text)
    with ctx.frontend.store.write() as session:
        row = vnets.load(session, ctx.principal, vnet_id, "MANAGE")
        current = vnet_template(row)
        attrs = {**current, **new} if append else dict(new)
        for key in ("VN_MAD", "VLAN_ID"):
            given = attrs.pop(key, None)
            if given is not None and str(given) != current.get(key):
                raise InvalidInput(key, f"cannot be changed (it is {current.get(key, 'unset')})")
        if "AR" in attrs:
            raise InvalidInput("AR", "address ranges change with one.vn.add_ar/rm_ar/update_ar")
        groups = attrs.pop("SECURITY_GROUPS", None)
        bridge, phydev = attrs.pop("BRIDGE", None), attrs.pop("PHYDEV", None)
        attrs.pop("BRIDGE_TYPE", None)
        for key in (PARENT, PARENT_AR, "VN_MAD"):  # what the vnet keeps for itself
            attrs.pop(key, None)
            if key in row.template and (key != "VN_MAD" or vn_mad(row) == "dummy"):
                attrs[key] = row.template[key]
        body = wire_body(
            wire.VnetUpdate,
            bridge=None if bridge is None else single(bridge, "BRIDGE"),
            phydev=None if phydev is None else single(phydev, "PHYDEV"),
            security_groups=None if groups is None else id_list(groups, "SECURITY_GROUPS"),
            template=attrs,
        )
        vnets.update(session, ctx.principal, vnet_id, body)
    return vnet_id


@method("one.vn.delete", int, kind="action")
def vn_delete(ctx: Ctx, vnet_id: int) -> int:
    """Delete a vnet without leases (a reservation gives its block back)."""
    with ctx.frontend.store.write() as session:
        vnets.delete(session, ctx.principal, vnet_id)
    return vnet_id


@method("one.vn.add_ar", int, str, kind="action")
def vn_add_ar(ctx: Ctx, vnet_id: int, text: str) -> int:
    """Add the template's AR vectors (ADMIN right)."""
    items = vectors(parse(text), "AR", "TYPE", "SIZE")
    if not items:
        raise InvalidInput("AR", "no AR = [ TYPE = ..., SIZE = ... ] in the template")
    ranges = [range_in(v, f"AR[{i}]") for i, v in enumerate(items)]
    with ctx.frontend.store.write() as session:
        for spec, extra in ranges:
            out = vnets.add_range(session, ctx.principal, vnet_id, spec)
            ar = range_row(session, vnet_id, out.address_ranges[-1].ar_id)
            set_range_attributes(ar, extra, merge=False)
    return vnet_id


@method("one.vn.rm_ar", int, int, bool, defaults=(False,), kind="action")
def vn_rm_ar(ctx: Ctx, vnet_id: int, ar_id: int, force: bool) -> int:
    """Remove a range without leases; force releases its leases held outside VMs first."""
    with ctx.frontend.store.write() as session:
        if force:
            vnets.load(session, ctx.principal, vnet_id, "ADMIN")
            children = [child for child, _, _ in reservations_of(session, vnet_id, ar_id)]
            if children:
                raise Conflict(f"vnets {children} are reservations from range {ar_id}")
            held = select(Lease.id).where(
                Lease.vnet_id == vnet_id, Lease.ar_id == ar_id, Lease.vm_id.is_(None)
            )
            for lease_id in session.scalars(held).all():
                vnets.release_lease(session, ctx.principal, vnet_id, lease_id)
        vnets.remove_range(session, ctx.principal, vnet_id, ar_id)
    return vnet_id


@method("one.vn.update_ar", int, str, kind="action")
def vn_update_ar(ctx: Ctx, vnet_id: int, text: str) -> int:
    """Set an AR's attributes (MANAGE right; KEY = "" removes one) and SIZE (ADMIN right);
    TYPE, IP, MAC and the IPv6 prefixes stay as they are."""
    items = vectors(parse(text), "AR", "AR_ID")
    if not items:
        raise InvalidInput("AR", "no AR = [ AR_ID = ..., ... ] in the template")
    with ctx.frontend.store.write() as session:
        for index, item in enumerate(items):
            name = f"AR[{index}]"
            if not item.get("AR_ID"):
                raise InvalidInput(f"{name}.AR_ID", "which range: AR_ID is missing")
            vnets.load(session, ctx.principal, vnet_id, "MANAGE")
            ar = range_row(session, vnet_id, number(item["AR_ID"], f"{name}.AR_ID"))
            size = number(item["SIZE"], f"{name}.SIZE") if item.get("SIZE") else ar.size
            if size != ar.size:
                resize(session, vnets.load(session, ctx.principal, vnet_id, "ADMIN"), ar, size)
            set_range_attributes(ar, range_extras(item), merge=True)
    return vnet_id


@method("one.vn.reserve", int, str, kind="action")
def vn_reserve(ctx: Ctx, vnet_id: int, text: str) -> int:
    """Reserve SIZE addresses (from AR_ID, from IP) as a new vnet NAME of the caller's."""
    attrs = parse(text)
    for key, why in (
        ("NETWORK_ID", "adding to an existing reservation is not supported: reserve a new one"),
        ("MAC", "give the first address as IP"),
    ):
        if key in attrs:
            raise InvalidInput(key, why)
    if "SIZE" not in attrs:
        raise InvalidInput("SIZE", "how many addresses: SIZE is missing")
    body = wire_body(
        wire.ReserveRequest,
        size=number(attrs["SIZE"], "SIZE"),
        name=single(attrs.get("NAME", ""), "NAME") or None,
        ar_id=number(attrs["AR_ID"], "AR_ID") if "AR_ID" in attrs else None,
        ip=single(attrs.get("IP", ""), "IP") or None,
    )
    with ctx.frontend.store.write() as session:
        return vnets.reserve(session, ctx.principal, vnet_id, body).id


@method("one.vn.hold", int, str, kind="action")
def vn_hold(ctx: Ctx, vnet_id: int, text: str) -> int:
    """Put LEASE = [ IP = ... ] (or MAC, and AR_ID) on hold: nobody gets it."""
    lease = _lease_vector(text)
    body = wire_body(
        wire.LeaseRequest,
        ip=lease.get("IP") or None,
        mac=lease.get("MAC") or None,
        ar_id=number(lease["AR_ID"], "LEASE.AR_ID") if lease.get("AR_ID") else None,
        state="hold",
    )
    with ctx.frontend.store.write() as session:
        vnets.take_lease(session, ctx.principal, vnet_id, body)
    return vnet_id


@method("one.vn.release", int, str, kind="action")
def vn_release(ctx: Ctx, vnet_id: int, text: str) -> int:
    """Give back LEASE = [ IP = ... ] (or MAC): a held lease, never a VM's."""
    given = _lease_vector(text)
    with ctx.frontend.store.write() as session:
        vnets.load(session, ctx.principal, vnet_id)
        if given.get("IP"):
            address, match = given["IP"], Lease.ip == given["IP"]
        else:
            address = given["MAC"].lower().replace("-", ":")
            match = Lease.mac == address
        lease = session.scalars(select(Lease).where(Lease.vnet_id == vnet_id, match)).first()
        if lease is None:
            raise InvalidInput("LEASE", f"{address} is not leased in vnet {vnet_id}")
        child_id = reserved_by(session, lease)
        if child_id is not None:
            raise Conflict(f"{address} belongs to reservation vnet {child_id}: delete it")
        vnets.release_lease(session, ctx.principal, vnet_id, lease.id)
    return vnet_id


def _lease_vector(text: str) -> dict[str, str]:
    items = vectors(parse(text), "LEASE", "IP", "MAC")
    if len(items) != 1 or not (items[0].get("IP") or items[0].get("MAC")):
        raise InvalidInput("LEASE", "give one LEASE = [ IP = ... ] or LEASE = [ MAC = ... ]")
    return items[0]


register_owned("vn", vnets)

# The security group family: registers one.secgroup.* and one.secgrouppool.info.
from edgecloud.server.xmlrpc import m_secgroups  # noqa: E402, F401
