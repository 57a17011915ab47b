"""one.system.*, one.user.*, one.group.*, one.acl.*, one.zone.* onto the identity services.

Also the helpers the other families share: `wire_body` (a wire type from XML-RPC
parameters, refusals as the services' InvalidInput) and `changed_template` (OpenNebula's
update: replace, or merge when `append` is 1), `chmod_bits` (OpenNebula's nine chmod
parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud import __version__
from edgecloud.api import identity as wire
from edgecloud.server.auth.acl_syntax import parse_acl
from edgecloud.server.auth.authn import issue_token
from edgecloud.server.auth.tokens import token_digest
from edgecloud.server.db.models import Group, Token, User, UserGroup, now
from edgecloud.server.errors import Forbidden, InvalidInput, NotFound
from edgecloud.server.services import acls, quotas, users
from edgecloud.server.xmlrpc import m_system_render as render
from edgecloud.server.xmlrpc.core import XML_RPC_API, Ctx, OneError, method, not_found, wire_body
from edgecloud.server.xmlrpc.xml import attributes, dumps

USERS, GROUPS = users.Users(), users.Groups()
AUTH_DRIVERS = ("", "core")


# --- shared helpers -------------------------------------------------------------------


def template_attrs(text: str, *, field: str = "template") -> dict[str, Any]:
    """A template parameter (OpenNebula syntax or XML) as normalised attributes."""
    return attributes(text, field=field)


def changed_template(old: dict[str, Any], text: str, append: int) -> dict[str, Any]:
    """The template after an update: `append` 1 merges into the old one, 0 replaces it."""
    given = template_attrs(text)
    return {**old, **given} if append else given


def chmod_bits(current: int, bits: Sequence[int]) -> str:
    """OpenNebula's nine chmod parameters (1 set, 0 clear, -1 keep) applied to `current`."""
    perms = current
    for index, value in enumerate(bits):
        bit = 1 << (8 - index)
        if value not in (-1, 0, 1):
            raise InvalidInput("permissions", f"parameter {index + 3} must be -1, 0 or 1")
        if value != -1:
            perms = perms | bit if value else perms & ~bit
    return f"{perms:03o}"


def _clear(ctx: Ctx) -> None:
    ctx.frontend.authenticator.cache.clear()  # who may do what changed


# --- system ---------------------------------------------------------------------------


@method("one.system.version")
def system_version(ctx: Ctx) -> str:
    """The front-end's version."""
    return __version__


@method("one.system.config")
def system_config(ctx: Ctx) -> str:
    """A minimal OPENNEBULA_CONFIGURATION."""
    return dumps(render.configuration(ctx.frontend.settings, ctx.frontend.store.dialect))


# --- users ----------------------------------------------------------------------------


def _user_doc(session: Session, item: wire.User) -> str:
    gname = session.scalar(select(Group.name).where(Group.id == item.group_id)) or ""
    quota = render.vm_quota(quotas.show(session, "user", item.id))
    return dumps(render.user(item, gname, quota=quota))


@method("one.user.info", int, bool, defaults=(-1, False))
def user_info(ctx: Ctx, user_id: int, decrypt: bool) -> str:
    """A user (-1: the caller)."""
    uid = ctx.principal.user_id if user_id == -1 else user_id
    with ctx.frontend.store.read() as session:
        return _user_doc(session, USERS.get(session, ctx.principal, uid))


@method("one.user.allocate", str, str, str, list, defaults=("", []), kind="allocate")
def user_allocate(ctx: Ctx, name: str, password: str, driver: str, group_ids: list[Any]) -> int:
    """Create a user: the first group is the primary one (default 'users'), others secondary."""
    if not ctx.principal.is_admin:
        raise Forbidden("only admins can create users")
    if driver not in AUTH_DRIVERS:
        raise InvalidInput("driver", f"auth driver {driver!r} is not supported; use 'core'")
    if not all(isinstance(g, int) and not isinstance(g, bool) for g in group_ids):
        raise InvalidInput("group_ids", "must be group ids (integers)")
    primary = group_ids[0] if group_ids else None
    body = wire_body(wire.UserCreate, name=name, password=password, group_id=primary)
    with ctx.frontend.store.write() as session:
        made = users.create_user(session, ctx.principal, body)
        for gid in group_ids[1:]:
            users.add_membership(session, ctx.principal, made.id, gid)
    _clear(ctx)
    return made.id


@method("one.user.passwd", int, str, kind="action")
def user_passwd(ctx: Ctx, user_id: int, password: str) -> int:
    """Set a user's password (their login tokens are revoked)."""
    body = wire_body(wire.PasswordChange, password=password)
    with ctx.frontend.store.write() as session:
        users.set_password(session, ctx.principal, user_id, body)
    _clear(ctx)
    return user_id


@method("one.user.delete", int, kind="action")
def user_delete(ctx: Ctx, user_id: int) -> int:
    """Delete a user who owns no live VMs."""
    with ctx.frontend.store.write() as session:
        users.delete_user(session, ctx.principal, user_id)
    _clear(ctx)
    return user_id


@method("one.user.update", int, str, int, defaults=(0,), kind="action")
def user_update(ctx: Ctx, user_id: int, text: str, append: int) -> int:
    """Replace (0) or merge into (1) a user's template."""
    with ctx.frontend.store.write() as session:
        old = USERS.get(session, ctx.principal, user_id).template
        body = wire.UserUpdate(template=changed_template(old, text, append))
        users.update_user(session, ctx.principal, user_id, body)
    return user_id


@method("one.user.chgrp", int, int, kind="action")
def user_chgrp(ctx: Ctx, user_id: int, group_id: int) -> int:
    """Change a user's primary group; the old one is left unless it was also secondary."""
    if not ctx.principal.is_admin:
        raise Forbidden("only admins can change a user's primary group")
    with ctx.frontend.store.write() as session:
        before = USERS.get(session, ctx.principal, user_id)
        if session.get(Group, group_id) is None:
            raise not_found("group", group_id)
        was_member = group_id in before.group_ids
        users.update_user(session, ctx.principal, user_id, wire.UserUpdate(group_id=group_id))
        if not was_member and before.group_id != group_id:
            users.remove_membership(session, ctx.principal, user_id, before.group_id)
    _clear(ctx)
    return user_id


@method("one.user.addgroup", int, int, kind="action")
def user_addgroup(ctx: Ctx, user_id: int, group_id: int) -> int:
    """Add a user to a secondary group."""
    if not ctx.principal.is_admin:
        raise Forbidden("only admins can change group membership")
    with ctx.frontend.store.write() as session:
        if session.get(Group, group_id) is None:
            raise not_found("group", group_id)
        users.add_membership(session, ctx.principal, user_id, group_id)
    _clear(ctx)
    return user_id


@method("one.user.delgroup", int, int, kind="action")
def user_delgroup(ctx: Ctx, user_id: int, group_id: int) -> int:
    """Remove a user from a secondary group."""
    with ctx.frontend.store.write() as session:
        users.remove_membership(session, ctx.principal, user_id, group_id)
    _clear(ctx)
    return user_id


@method("one.user.enable", int, bool, kind="action")
def user_enable(ctx: Ctx, user_id: int, enable: bool) -> int:
    """Enable or disable a user (admins; never user 0)."""
    with ctx.frontend.store.write() as session:
        users.update_user(session, ctx.principal, user_id, wire.UserUpdate(enabled=enable))
    _clear(ctx)
    return user_id


@method("one.user.login", str, str, int, int, defaults=(-1,), kind="action")
def user_login(ctx: Ctx, name: str, token: str, expire: int, egid: int) -> str:
    """Issue a token (`token` empty), extend one (`expire` > 0, or -1: the longest we give)
    or revoke one (`expire` 0; all of the user's when `token` is empty). The session
    'name:token' then authenticates like the password."""
    if name != ctx.principal.name and not ctx.principal.is_admin:
        raise Forbidden(f"only {name} or an admin can manage {name}'s login tokens")
    if expire < -1:
        raise OneError(XML_RPC_API, "Wrong valid period for token")
    ttl = render.MAX_TOKEN_SECONDS if expire == -1 else min(expire, render.MAX_TOKEN_SECONDS)
    with ctx.frontend.store.write() as session:
        row = session.scalar(select(User).where(User.name == name))
        if row is None:
            raise NotFound(f"user {name!r} does not exist", field="user")
        _check_egid(session, row, egid)
        found = _token_row(session, row, token)
        if expire == 0:
            mine = select(Token).where(Token.user_id == row.id)
            for gone in [found] if found else session.scalars(mine).all():
                session.delete(gone)
        elif found is not None:
            found.expires_at = now() + ttl
        else:
            token, _ = issue_token(session, row, ttl_seconds=max(ttl, 60), name="one.user.login")
    if expire == 0:
        _clear(ctx)  # a cached session with a revoked token must fail at once
    return token


def _check_egid(session: Session, row: User, egid: int) -> None:
    if egid == -1:
        return
    groups = set(session.scalars(select(UserGroup.group_id).where(UserGroup.user_id == row.id)))
    if egid not in groups | {row.group_id}:
        raise OneError(XML_RPC_API, "EGID is not in user group list")
    if groups - {egid}:  # a token would act in every group: only fine if that is the one
        raise OneError(XML_RPC_API, "group-scoped tokens are not supported; use egid -1")


def _token_row(session: Session, row: User, token: str) -> Token | None:
    if not token:
        return None
    found = session.scalar(
        select(Token).where(Token.token_hash == token_digest(token), Token.user_id == row.id)
    )
    if found is None:
        raise OneError(XML_RPC_API, "Could not find token")
    return found


@method("one.userpool.info")
def userpool_info(ctx: Ctx) -> str:
    """The users the caller may see (admins: all, others: themselves)."""
    stmt = select(User).order_by(User.id)
    if not ctx.principal.is_admin:
        stmt = stmt.where(User.id == ctx.principal.user_id)
    with ctx.frontend.store.read() as session:
        rows = session.scalars(stmt).all()
        wanted = stmt.with_only_columns(User.id).order_by(None)
        members: dict[int, list[int]] = {}
        for uid, gid in session.execute(
            select(UserGroup.user_id, UserGroup.group_id)
            .where(UserGroup.user_id.in_(wanted))
            .order_by(UserGroup.group_id)
        ):
            members.setdefault(uid, []).append(gid)
        gnames = {gid: gname for gid, gname in session.execute(select(Group.id, Group.name))}
    items = (
        render.user(
            render.user_wire(row, members.get(row.id, [])), gnames.get(row.group_id, ""), full=False
        )
        for row in rows
    )
    return dumps(render.user_pool(items))


# --- groups ---------------------------------------------------------------------------


@method("one.group.info", int, bool, defaults=(False,))
def group_info(ctx: Ctx, group_id: int, decrypt: bool) -> str:
    """A group the caller belongs to (admins: any)."""
    with ctx.frontend.store.read() as session:
        item = GROUPS.get(session, ctx.principal, group_id)
        quota = render.vm_quota(quotas.show(session, "group", group_id))
    return dumps(render.group(item, quota=quota))


@method("one.group.allocate", str, kind="allocate")
def group_allocate(ctx: Ctx, name: str) -> int:
    """Create a group (with the default ACL rules of a new group)."""
    body = wire_body(wire.GroupCreate, name=name)
    with ctx.frontend.store.write() as session:
        made = users.create_group(session, ctx.principal, body)
    _clear(ctx)
    return made.id


@method("one.group.delete", int, kind="action")
def group_delete(ctx: Ctx, group_id: int) -> int:
    """Delete an empty group."""
    with ctx.frontend.store.write() as session:
        users.delete_group(session, ctx.principal, group_id)
    _clear(ctx)
    return group_id


@method("one.group.update", int, str, int, defaults=(0,), kind="action")
def group_update(ctx: Ctx, group_id: int, text: str, append: int) -> int:
    """Replace (0) or merge into (1) a group's template."""
    with ctx.frontend.store.write() as session:
        old = GROUPS.get(session, ctx.principal, group_id).template
        body = wire.GroupUpdate(template=changed_template(old, text, append))
        users.update_group(session, ctx.principal, group_id, body)
    return group_id


@method("one.grouppool.info")
def grouppool_info(ctx: Ctx) -> str:
    """The groups the caller belongs to (admins: all)."""
    stmt = select(Group).order_by(Group.id)
    if not ctx.principal.is_admin:
        stmt = stmt.where(Group.id.in_(ctx.principal.group_ids))
    with ctx.frontend.store.read() as session:
        rows = session.scalars(stmt).all()
        members: dict[int, list[int]] = {}
        for uid, gid in session.execute(
            select(UserGroup.user_id, UserGroup.group_id)
            .where(UserGroup.group_id.in_(stmt.with_only_columns(Group.id).order_by(None)))
            .order_by(UserGroup.user_id)
        ):
            members.setdefault(gid, []).append(uid)
    items = (
        render.group(
            wire.Group(
                id=row.id,
                name=row.name,
                user_ids=members.get(row.id, []),
                version=row.version,
                created_at=row.created_at,
                template=row.template,
            ),
            full=False,
        )
        for row in rows
    )
    return dumps(render.group_pool(items))


# --- ACL rules ------------------------------------------------------------------------


@method("one.acl.addrule", str, str, str, str, defaults=("",), kind="allocate")
def acl_addrule(ctx: Ctx, user: str, resource: str, rights: str, zone: str) -> int:
    """Add a rule given as OpenNebula's hex numbers (zone omitted: every zone)."""
    if not ctx.principal.is_admin:
        raise Forbidden("only admins can add ACL rules")
    body = wire_body(wire.AclCreate, rule=render.rule_text(user, resource, rights, zone))
    with ctx.frontend.store.write() as session:
        made = acls.create(session, ctx.principal, body)
    _clear(ctx)
    return made.id


@method("one.acl.delrule", int, kind="action")
def acl_delrule(ctx: Ctx, rule_id: int) -> int:
    """Remove a rule."""
    with ctx.frontend.store.write() as session:
        acls.delete(session, ctx.principal, rule_id)
    _clear(ctx)
    return rule_id


@method("one.aclpool.info")
def aclpool_info(ctx: Ctx) -> str:
    """The rules (admins: all; others: those that apply to them)."""
    with ctx.frontend.store.read() as session:
        rules = acls.list_all(session, ctx.principal)
    return dumps(render.acl_pool((r.id, parse_acl(r.rule)) for r in rules))


# --- zones ----------------------------------------------------------------------------


@method("one.zone.info", int, bool, defaults=(False,))
def zone_info(ctx: Ctx, zone_id: int, decrypt: bool) -> str:
    """Zone 0, this front-end (there is no other)."""
    if zone_id != 0:
        raise not_found("zone", zone_id)
    return dumps(render.zone(ctx.frontend.settings))


@method("one.zonepool.info")
def zonepool_info(ctx: Ctx) -> str:
    """The one zone."""
    return f"<ZONE_POOL>{dumps(render.zone(ctx.frontend.settings))}</ZONE_POOL>"
