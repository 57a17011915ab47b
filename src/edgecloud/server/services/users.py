"""Users and groups: accounts, passwords, memberships."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecloud.api import identity as wire
from edgecloud.api.common import Page
from edgecloud.server.auth.access import USERS_GROUP_ID, Principal
from edgecloud.server.auth.passwords import hash_password
from edgecloud.server.db.models import AclRuleRow, Group, Token, User, UserGroup, Vm
from edgecloud.server.errors import Conflict, Forbidden, InvalidInput, NotFound
from edgecloud.server.services.acls import GROUP_ACLS, add_rule
from edgecloud.server.services.objects import (
    ListQuery,
    check_version,
    parse_template_input,
    split_page,
)

DONE = 6


def _require_admin(principal: Principal, what: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only admins can {what}")


def _user(session: Session, principal: Principal, user_id: int) -> User:
    row = session.get(User, user_id)
    if row is None or not (principal.is_admin or principal.user_id == user_id):
        raise NotFound(f"user {user_id} does not exist", field="id")
    return row


def _group(session: Session, group_id: int, *, field: str = "group_id") -> Group:
    row = session.get(Group, group_id)
    if row is None:
        raise InvalidInput(field, f"group {group_id} does not exist")
    return row


def user_wire(session: Session, row: User) -> wire.User:
    """Render a user with its group ids."""
    gids = session.scalars(select(UserGroup.group_id).where(UserGroup.user_id == row.id))
    return wire.User(
        id=row.id,
        name=row.name,
        group_id=row.group_id,
        group_ids=sorted(gids),
        enabled=row.enabled,
        version=row.version,
        created_at=row.created_at,
        template=row.template,
    )


class Users:
    """Use cases of users, in the shape the REST CRUD router expects."""

    read_type = wire.User

    def create(self, session: Session, principal: Principal, body: wire.UserCreate) -> wire.User:
        """Create a user in a primary group (admins only)."""
        return create_user(session, principal, body)

    def get(self, session: Session, principal: Principal, obj_id: int) -> wire.User:
        """Show a user: yourself, or anyone for admins."""
        return user_wire(session, _user(session, principal, obj_id))

    def list(
        self, session: Session, principal: Principal, query: ListQuery, params: dict[str, Any]
    ) -> Page[wire.User]:
        """List users (admins see all, others themselves)."""
        stmt = select(User).order_by(User.id).limit(query.limit + 1)
        if not principal.is_admin:
            stmt = stmt.where(User.id == principal.user_id)
        stmt = stmt.where(*_id_name_filters(User, query))
        items, nxt = split_page(session.scalars(stmt).all(), query.limit)
        return Page[wire.User](items=[user_wire(session, u) for u in items], next_cursor=nxt)

    def update(
        self, session: Session, principal: Principal, obj_id: int, body: wire.UserUpdate
    ) -> wire.User:
        """Change a user."""
        return update_user(session, principal, obj_id, body)

    def delete(self, session: Session, principal: Principal, obj_id: int) -> None:
        """Delete a user."""
        delete_user(session, principal, obj_id)


def _id_name_filters(model: Any, query: ListQuery) -> list[Any]:
    terms = []
    if query.cursor is not None:
        terms.append(model.id > query.cursor)
    if query.name_prefix:
        terms.append(model.name.startswith(query.name_prefix, autoescape=True))
    return terms


def create_user(session: Session, principal: Principal, body: wire.UserCreate) -> wire.User:
    """Create a user in a primary group (admins only)."""
    _require_admin(principal, "create users")
    gid = USERS_GROUP_ID if body.group_id is None else body.group_id
    _group(session, gid)
    if session.scalar(select(User.id).where(User.name == body.name)) is not None:
        raise Conflict(f"name: user '{body.name}' already exists", field="name")
    row = User(
        name=body.name,
        password_hash=hash_password(body.password),
        group_id=gid,
        template=parse_template_input(body.template),
    )
    session.add(row)
    session.flush()
    session.add(UserGroup(user_id=row.id, group_id=gid))
    session.flush()
    return user_wire(session, row)


def update_user(
    session: Session, principal: Principal, user_id: int, body: wire.UserUpdate
) -> wire.User:
    """Change attributes (self or admin); primary group and enabled flag (admin)."""
    row = _user(session, principal, user_id)
    check_version(row, body.version)
    if body.template is not None:
        row.template = parse_template_input(body.template)
    if body.group_id is not None and body.group_id != row.group_id:
        _require_admin(principal, "change a user's primary group")
        _group(session, body.group_id)
        row.group_id = body.group_id
        if session.get(UserGroup, (row.id, body.group_id)) is None:
            session.add(UserGroup(user_id=row.id, group_id=body.group_id))
    if body.enabled is not None and body.enabled != row.enabled:
        _require_admin(principal, "enable or disable users")
        if row.id == 0:
            raise Conflict("the admin user 0 cannot be disabled", field="enabled")
        row.enabled = body.enabled
    session.flush()
    return user_wire(session, row)


def set_password(
    session: Session, principal: Principal, user_id: int, body: wire.PasswordChange
) -> None:
    """Set a new password (self or admin) and revoke the user's tokens."""
    row = _user(session, principal, user_id)
    row.password_hash = hash_password(body.password)
    for token in session.scalars(select(Token).where(Token.user_id == user_id)):
        session.delete(token)
    session.flush()


def delete_user(session: Session, principal: Principal, user_id: int) -> None:
    """Delete a user who owns no live VMs (admins only; never user 0)."""
    _require_admin(principal, "delete users")
    row = _user(session, principal, user_id)
    if row.id == 0:
        raise Conflict("the admin user 0 cannot be deleted", field="id")
    vms = session.scalar(select(func.count()).where(Vm.owner_id == user_id, Vm.state != DONE))
    if vms:
        raise Conflict(f"user {user_id} still owns {vms} VM(s)", field="id")
    session.delete(row)
    session.flush()


def add_membership(
    session: Session, principal: Principal, user_id: int, group_id: int
) -> wire.User:
    """Add a user to a secondary group (admins only)."""
    _require_admin(principal, "change group membership")
    row = _user(session, principal, user_id)
    _group(session, group_id)
    if session.get(UserGroup, (user_id, group_id)) is None:
        session.add(UserGroup(user_id=user_id, group_id=group_id))
        session.flush()
    return user_wire(session, row)


def remove_membership(
    session: Session, principal: Principal, user_id: int, group_id: int
) -> wire.User:
    """Remove a user from a secondary group (not the primary one)."""
    _require_admin(principal, "change group membership")
    row = _user(session, principal, user_id)
    if row.group_id == group_id:
        raise Conflict(
            "group_id: that is the user's primary group; change it first", field="group_id"
        )
    link = session.get(UserGroup, (user_id, group_id))
    if link is None:
        raise NotFound(f"user {user_id} is not in group {group_id}", field="group_id")
    session.delete(link)
    session.flush()
    return user_wire(session, row)


# --- groups ----------------------------------------------------------------------------


def group_wire(session: Session, row: Group) -> wire.Group:
    """Render a group with its members."""
    members = session.scalars(select(UserGroup.user_id).where(UserGroup.group_id == row.id))
    return wire.Group(
        id=row.id,
        name=row.name,
        user_ids=sorted(members),
        version=row.version,
        created_at=row.created_at,
        template=row.template,
    )


def _visible_group(session: Session, principal: Principal, group_id: int) -> Group:
    row = session.get(Group, group_id)
    if row is None or not (principal.is_admin or group_id in principal.group_ids):
        raise NotFound(f"group {group_id} does not exist", field="id")
    return row


class Groups:
    """Use cases of groups, in the shape the REST CRUD router expects."""

    read_type = wire.Group

    def create(self, session: Session, principal: Principal, body: wire.GroupCreate) -> wire.Group:
        """Create a group (admins only)."""
        return create_group(session, principal, body)

    def get(self, session: Session, principal: Principal, obj_id: int) -> wire.Group:
        """Show a group you belong to (admins: any)."""
        return group_wire(session, _visible_group(session, principal, obj_id))

    def list(
        self, session: Session, principal: Principal, query: ListQuery, params: dict[str, Any]
    ) -> Page[wire.Group]:
        """List the groups you belong to (admins: all)."""
        stmt = select(Group).order_by(Group.id).limit(query.limit + 1)
        if not principal.is_admin:
            stmt = stmt.where(Group.id.in_(principal.group_ids))
        stmt = stmt.where(*_id_name_filters(Group, query))
        items, nxt = split_page(session.scalars(stmt).all(), query.limit)
        return Page[wire.Group](items=[group_wire(session, g) for g in items], next_cursor=nxt)

    def update(
        self, session: Session, principal: Principal, obj_id: int, body: wire.GroupUpdate
    ) -> wire.Group:
        """Replace a group's attributes."""
        return update_group(session, principal, obj_id, body)

    def delete(self, session: Session, principal: Principal, obj_id: int) -> None:
        """Delete an empty group."""
        delete_group(session, principal, obj_id)


def create_group(session: Session, principal: Principal, body: wire.GroupCreate) -> wire.Group:
    """Create a group (admins only)."""
    _require_admin(principal, "create groups")
    if session.scalar(select(Group.id).where(Group.name == body.name)) is not None:
        raise Conflict(f"name: group '{body.name}' already exists", field="name")
    row = Group(name=body.name, template=parse_template_input(body.template))
    session.add(row)
    session.flush()
    for rule in GROUP_ACLS:
        add_rule(session, rule.format(gid=row.id))
    return group_wire(session, row)


def update_group(
    session: Session, principal: Principal, group_id: int, body: wire.GroupUpdate
) -> wire.Group:
    """Replace a group's attributes (admins only)."""
    _require_admin(principal, "change groups")
    row = _visible_group(session, principal, group_id)
    check_version(row, body.version)
    if body.template is not None:
        row.template = parse_template_input(body.template)
    session.flush()
    return group_wire(session, row)


def delete_group(session: Session, principal: Principal, group_id: int) -> None:
    """Delete an empty group (admins only; never the built-in groups)."""
    _require_admin(principal, "delete groups")
    row = _visible_group(session, principal, group_id)
    if row.id in (0, USERS_GROUP_ID):
        raise Conflict(f"the built-in group {row.id} cannot be deleted", field="id")
    members = session.scalar(select(func.count()).where(UserGroup.group_id == group_id))
    if members:
        raise Conflict(f"group {group_id} still has {members} member(s)", field="id")
    for acl in session.scalars(
        select(AclRuleRow).where(AclRuleRow.user_kind == "group", AclRuleRow.user_id == group_id)
    ):
        session.delete(acl)
    session.delete(row)
    session.flush()
