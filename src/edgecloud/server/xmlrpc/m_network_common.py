"""What the vnet and security group families share: owners' names for documents, a
checked new name, and one.<kind>.chmod/chown/rename onto an owned resource's service."""

from __future__ import annotations

import functools
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from edgecloud.api.common import Chmod, Chown, Name
from edgecloud.server.db.models import Group, Owned, User
from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.resource import OwnedResource
from edgecloud.server.xmlrpc.core import XML_RPC_API, Ctx, OneError, method

NAME = TypeAdapter(Name)
Service = OwnedResource[Any, Any, Any, Any]


def names(session: Session, row: Owned) -> tuple[str, str]:
    """The names of an object's owner and group."""
    user, group = session.get(User, row.owner_id), session.get(Group, row.group_id)
    return (user.name if user else "", group.name if group else "")


def with_names(model: type[Owned]) -> Select[Any]:
    """The objects with their owner's and group's names (one query for a pool)."""
    stmt = select(model, User.name, Group.name).join(User, User.id == model.owner_id)
    return cast("Select[Any]", stmt.join(Group, Group.id == model.group_id))


def valid_name(value: str) -> str:
    """A new object name, checked as the REST API checks it."""
    try:
        return NAME.validate_python(value)
    except ValidationError:
        raise InvalidInput("name", "1 to 128 characters, no control characters") from None


def chmod(ctx: Ctx, obj_id: int, *bits: int, service: Service) -> int:
    """OpenNebula's nine bits (owner, group, other x use, manage, admin); -1 keeps one."""
    with ctx.frontend.store.write() as session:
        perms = service.load(session, ctx.principal, obj_id, "MANAGE").perms
        for index, bit in enumerate(bits):
            if bit not in (-1, 0, 1):
                raise OneError(XML_RPC_API, f"permission {index + 1} must be -1, 0 or 1")
            mask = 1 << (8 - index)
            perms = perms if bit == -1 else (perms | mask if bit else perms & ~mask)
        service.chmod(session, ctx.principal, obj_id, Chmod(permissions=f"{perms:03o}"))
    return obj_id


def chown(ctx: Ctx, obj_id: int, user_id: int, group_id: int, *, service: Service) -> int:
    """A new owner and/or group; -1 keeps it."""
    body = Chown(
        owner_id=None if user_id < 0 else user_id, group_id=None if group_id < 0 else group_id
    )
    with ctx.frontend.store.write() as session:
        service.chown(session, ctx.principal, obj_id, body)
    return obj_id


def rename(ctx: Ctx, obj_id: int, name: str, *, service: Service) -> int:
    """A new name (unique per owner)."""
    with ctx.frontend.store.write() as session:
        row = service.load(session, ctx.principal, obj_id, "MANAGE")
        service.rename(session, ctx.principal, row, valid_name(name))
    return obj_id


def register_owned(prefix: str, service: Service) -> None:
    """Register one.<prefix>.chmod, .chown and .rename onto `service`."""
    method(f"one.{prefix}.chmod", *(int,) * 10, kind="action")(
        functools.partial(chmod, service=service)
    )
    method(f"one.{prefix}.chown", int, int, int, kind="action")(
        functools.partial(chown, service=service)
    )
    method(f"one.{prefix}.rename", int, str, kind="action")(
        functools.partial(rename, service=service)
    )
