"""What every owned object shares: access checks, paging, templates, versions, chmod/chown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from edgecloud.api.common import Chmod, Chown
from edgecloud.server.auth.access import ObjectRef, Principal
from edgecloud.server.auth.permissions import format_perms, parse_perms
from edgecloud.server.db.models import (
    ClusterDatastore,
    ClusterVnet,
    Group,
    Owned,
    User,
    UserGroup,
)
from edgecloud.server.errors import Conflict, Forbidden, InvalidInput, NotFound
from edgecloud.server.services.template_syntax import (
    TemplateSyntaxError,
    parse_json_template,
    parse_template,
)

M = TypeVar("M", bound=Owned)

MAX_PAGE = 100_000
DEFAULT_PAGE = 100
DEFAULT_UMASK = 0o177


@dataclass(frozen=True)
class ListQuery:
    """Paging and filters common to list endpoints."""

    limit: int = DEFAULT_PAGE
    cursor: int | None = None
    name_prefix: str | None = None
    owner_id: int | None = None
    group_id: int | None = None


def parse_template_input(value: dict[str, Any] | str, *, field: str = "template") -> dict[str, Any]:
    """Turn OpenNebula template text or a JSON object into attributes, naming errors."""
    if isinstance(value, str):
        try:
            return parse_template(value)
        except TemplateSyntaxError as exc:
            raise InvalidInput(field, str(exc)) from exc
    return parse_json_template(value)


def object_ref(session: Session, kind: str, row: Owned) -> ObjectRef:
    """Return what access decisions need to know about `row`."""
    return ObjectRef(
        id=row.id,
        owner_id=row.owner_id,
        group_id=row.group_id,
        perms=row.perms,
        cluster_ids=_cluster_ids(session, kind, row),
    )


def _cluster_ids(session: Session, kind: str, row: Owned) -> frozenset[int]:
    if kind == "CLUSTER":
        return frozenset({row.id})
    if kind in ("HOST", "VM"):
        cid = getattr(row, "cluster_id", None)
        return frozenset() if cid is None else frozenset({cid})
    if kind == "DATASTORE":
        q = select(ClusterDatastore.cluster_id).where(ClusterDatastore.datastore_id == row.id)
        return frozenset(session.scalars(q))
    if kind == "NET":
        return frozenset(
            session.scalars(select(ClusterVnet.cluster_id).where(ClusterVnet.vnet_id == row.id))
        )
    return frozenset()


def load(
    session: Session,
    principal: Principal,
    model: type[M],
    kind: str,
    obj_id: int,
    *,
    right: str = "USE",
    lock: bool = False,
) -> M:
    """Fetch an object the caller may see, or raise NotFound / Forbidden."""
    # Changes lock the row (PostgreSQL; SQLite writers are serialised already), so an
    # update made by a background loop meanwhile waits instead of failing as stale.
    row = session.get(model, obj_id, with_for_update=(lock or right != "USE") or None)
    label = kind.lower() if kind != "NET" else "vnet"
    if row is None:
        raise NotFound(f"{label} {obj_id} does not exist", field="id")
    ref = object_ref(session, kind, row)
    if not principal.can("USE", kind, ref) and not principal.can(right, kind, ref):
        raise NotFound(f"{label} {obj_id} does not exist", field="id")
    if not principal.can(right, kind, ref):
        raise Forbidden(f"{right} right on {label} {obj_id} is required", field="id")
    return row


def require_create(principal: Principal, kind: str) -> None:
    """Refuse if the caller may not create objects of `kind`."""
    if not principal.can_create(kind):
        raise Forbidden(f"CREATE right on {kind} is required")


def list_query(model: type[M], principal: Principal, kind: str, query: ListQuery) -> Select[M]:
    """Build the SELECT of one page of visible objects, ordered by id."""
    stmt = select(model).where(principal.visible(kind)).order_by(model.id).limit(query.limit + 1)
    return stmt.where(*common_filters(model, query))


def common_filters(model: type[Owned], query: ListQuery) -> list[ColumnElement[bool]]:
    """Return the WHERE terms for cursor, name prefix, owner and group."""
    terms: list[ColumnElement[bool]] = []
    if query.cursor is not None:
        terms.append(model.id > query.cursor)
    if query.name_prefix:
        escaped = query.name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(model.name.like(escaped + "%", escape="\\"))
    if query.owner_id is not None:
        terms.append(model.owner_id == query.owner_id)
    if query.group_id is not None:
        terms.append(model.group_id == query.group_id)
    return terms


def split_page(rows: Sequence[Any], limit: int, id_of: Any = None) -> tuple[list[Any], int | None]:
    """Cut the extra row fetched to know whether another page exists; return the cursor."""
    items = list(rows[:limit])
    if len(rows) <= limit or not items:
        return items, None
    last = items[-1]
    return items, (id_of(last) if id_of else last.id)


def check_version(row: Owned | Any, expected: int | None) -> None:
    """Refuse an update made against an older version of the object."""
    if expected is not None and expected != row.version:
        raise Conflict(
            f"version: object changed since you read it (now {row.version}, you sent {expected})",
            field="version",
        )


def ensure_unique(
    session: Session,
    model: type[Owned],
    name: str,
    *,
    owner_id: int | None,
    exclude: int | None = None,
) -> None:
    """Refuse a name already taken (per owner when owner_id is given, else globally)."""
    stmt = select(model.id).where(model.name == name)
    if owner_id is not None:
        stmt = stmt.where(model.owner_id == owner_id)
    if exclude is not None:
        stmt = stmt.where(model.id != exclude)
    if session.scalar(stmt.limit(1)) is not None:
        raise Conflict(f"name: '{name}' is already taken", field="name")


def new_owned(principal: Principal, row: M) -> M:
    """Stamp a new object with the caller as owner, its primary group and default perms."""
    row.owner_id = principal.user_id
    row.group_id = principal.group_id
    row.perms = 0o777 & ~DEFAULT_UMASK
    return row


def chmod(session: Session, principal: Principal, kind: str, row: Owned, body: Chmod) -> None:
    """Change permission bits; the ADMIN bits need the ADMIN right."""
    perms = parse_perms(body.permissions)
    admin_bits = 0o111
    if (perms & admin_bits) != (row.perms & admin_bits) and not principal.can(
        "ADMIN", kind, object_ref(session, kind, row)
    ):
        raise Forbidden(
            "ADMIN right is required to change the admin permission bits", field="permissions"
        )
    row.perms = perms


def chown(session: Session, principal: Principal, row: Owned, body: Chown) -> None:
    """Change owner (admins only) and/or group (a group the owner belongs to)."""
    if body.owner_id is not None and body.owner_id != row.owner_id:
        if not principal.is_admin:
            raise Forbidden("only admins can give an object to another user", field="owner_id")
        if session.get(User, body.owner_id) is None:
            raise InvalidInput("owner_id", f"user {body.owner_id} does not exist")
        row.owner_id = body.owner_id
    if body.group_id is not None and body.group_id != row.group_id:
        if session.get(Group, body.group_id) is None:
            raise InvalidInput("group_id", f"group {body.group_id} does not exist")
        member = session.get(UserGroup, (row.owner_id, body.group_id))
        if not principal.is_admin and member is None:
            raise Forbidden("the owner is not a member of that group", field="group_id")
        row.group_id = body.group_id


def ownership(row: Owned) -> dict[str, Any]:
    """Return the Ownership fields of a row for a wire type."""
    return {
        "id": row.id,
        "name": row.name,
        "owner_id": row.owner_id,
        "group_id": row.group_id,
        "permissions": format_perms(row.perms),
        "version": row.version,
        "created_at": row.created_at,
        "template": row.template,
    }
