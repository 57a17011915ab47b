"""one.secgroup.* and one.secgrouppool.info onto the SecurityGroups service (its permission
checks decide; documents: m_secgroups_render). Imported by m_network, which registers the
vnet methods."""

from __future__ import annotations

import functools

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import AddressRange, SecurityGroup
from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.secgroups import SecurityGroups
from edgecloud.server.services.template_syntax import parse_json_template
from edgecloud.server.services.vnets import Vnets
from edgecloud.server.xmlrpc.core import Ctx, method, wire_body
from edgecloud.server.xmlrpc.m_network_common import names, register_owned, valid_name, with_names
from edgecloud.server.xmlrpc.m_network_render import parse, single
from edgecloud.server.xmlrpc.m_secgroups_render import (
    bare_read_back,
    range_blocks,
    rules_in,
    secgroup_doc,
    secgroup_template,
)
from edgecloud.server.xmlrpc.pools import PoolFilter
from edgecloud.server.xmlrpc.xml import dumps, pool

secgroups, vnets = SecurityGroups(), Vnets()


@method("one.secgroup.allocate", str, kind="allocate")
def sg_allocate(ctx: Ctx, text: str) -> int:
    """A security group from NAME, RULE vectors and other attributes."""
    attrs = parse(text)
    name = single(attrs.pop("NAME", ""), "NAME")
    if not name:
        raise InvalidInput("NAME", "no NAME in the template")
    with ctx.frontend.store.write() as session:
        rules = rules_in(attrs, functools.partial(_network_blocks, session, ctx.principal))
        attrs.pop("RULE", None)
        body = wire_body(wire.SecurityGroupCreate, name=name, rules=rules, template=attrs)
        return secgroups.create(session, ctx.principal, body).id


@method("one.secgroup.info", int, bool, defaults=(False,))
def sg_info(ctx: Ctx, group_id: int, decrypt: bool) -> str:
    """One security group with its rules."""
    with ctx.frontend.store.read() as session:
        row = secgroups.load(session, ctx.principal, group_id)
        return dumps(secgroup_doc(row, *names(session, row)))


@method("one.secgrouppool.info", int, int, int, defaults=(-2, -1, -1))
def secgrouppool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The security groups the caller may see, as the filter says."""
    where = PoolFilter(flag, start, end)
    with ctx.frontend.store.read() as session:
        stmt = where.apply(with_names(SecurityGroup), "SECGROUP", ctx.principal)
        rows = session.execute(stmt).all()
        return pool("SECURITY_GROUP_POOL", (secgroup_doc(r, u, g) for r, u, g in rows))


@method("one.secgroup.update", int, str, int, defaults=(0,), kind="action")
def sg_update(ctx: Ctx, group_id: int, text: str, append: int) -> int:
    """Replace (or, append = 1, merge into) the template: its RULEs are the group's rules."""
    new = parse(text)
    with ctx.frontend.store.write() as session:
        row = secgroups.load(session, ctx.principal, group_id, "MANAGE")
        current = {k: v for k, v in secgroup_template(row).items() if v != []}
        attrs = parse_json_template({**current, **new}) if append else dict(new)
        attrs.pop("NAME", None)
        if not append and bare_read_back(attrs.get("RULE"), list(row.rules)):
            attrs["RULE"] = current["RULE"]  # what the document could not show is kept
        rules = rules_in(attrs, functools.partial(_network_blocks, session, ctx.principal))
        attrs.pop("RULE", None)
        body = wire_body(wire.SecurityGroupUpdate, rules=rules, template=attrs)
        secgroups.update(session, ctx.principal, group_id, body)
    ctx.frontend.sync_security_group(group_id)
    return group_id


@method("one.secgroup.delete", int, kind="action")
def sg_delete(ctx: Ctx, group_id: int) -> int:
    """Delete a group no vnet names (never the default group 0)."""
    with ctx.frontend.store.write() as session:
        secgroups.delete(session, ctx.principal, group_id)
    return group_id


@method("one.secgroup.clone", int, str, kind="action")
def sg_clone(ctx: Ctx, group_id: int, name: str) -> int:
    """A copy of a group (USE right) owned by the caller."""
    with ctx.frontend.store.write() as session:
        row = secgroups.load(session, ctx.principal, group_id)
        body = wire_body(
            wire.SecurityGroupCreate,
            name=valid_name(name),
            rules=[wire.SecurityRule(**r) for r in row.rules],
            template=dict(row.template),
        )
        return secgroups.create(session, ctx.principal, body).id


@method("one.secgroup.commit", int, bool, defaults=(False,), kind="action")
def sg_commit(ctx: Ctx, group_id: int, recovery: bool) -> int:
    """Send the group's rules again to the hosts of the running VMs it filters."""
    with ctx.frontend.store.read() as session:
        secgroups.load(session, ctx.principal, group_id, "MANAGE")
    ctx.frontend.sync_security_group(group_id)
    return group_id


def _network_blocks(session: Session, principal: Principal, vnet_id: int) -> list[str]:
    """A rule's NETWORK_ID: the CIDR blocks of that vnet's addresses (USE right)."""
    vnets.load(session, principal, vnet_id)
    ars = session.scalars(select(AddressRange).where(AddressRange.vnet_id == vnet_id)).all()
    blocks = range_blocks(list(ars))
    if not blocks:
        raise InvalidInput("RULE.NETWORK_ID", f"vnet {vnet_id} has no IP address ranges")
    return blocks


register_owned("secgroup", secgroups)
