"""A generic owned resource: create, show, list, update, delete, chmod, chown.

Each concrete resource (cluster, host, image, ...) says how to build a row from a create
body, how to apply an update body, what a delete must check, and how to render a row.
The access checks, paging, version checks and name uniqueness live here once.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from edgecloud.api.common import Chmod, Chown, Page
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Owned
from edgecloud.server.services import objects
from edgecloud.server.services.objects import ListQuery

M = TypeVar("M", bound=Owned)
C = TypeVar("C", bound=BaseModel)
U = TypeVar("U", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class OwnedResource(Generic[M, C, U, R]):
    """Use cases shared by every owned object kind."""

    kind: ClassVar[str]
    model: type[M]
    read_type: type[R]
    unique_per_owner: ClassVar[bool] = True

    # --- hooks -----------------------------------------------------------------
    def build(self, session: Session, principal: Principal, body: C) -> M:
        """Return a new row from a create body (ownership is stamped afterwards)."""
        raise NotImplementedError

    def after_create(self, session: Session, principal: Principal, row: M, body: C) -> None:
        """Create dependent rows once the new row has its id."""

    def change(self, session: Session, principal: Principal, row: M, body: U) -> None:
        """Apply an update body to a row."""
        raise NotImplementedError

    def before_delete(self, session: Session, principal: Principal, row: M) -> None:
        """Refuse (or prepare) the deletion of a row."""

    def render(self, session: Session, row: M) -> dict[str, Any]:
        """Return the fields of the read type beyond Ownership."""
        return {}

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Return resource-specific list filters (state, cluster, ...)."""
        return []

    # --- use cases -------------------------------------------------------------
    def to_wire(self, session: Session, row: M) -> R:
        """Render a row as the resource's read type."""
        return self.read_type(**objects.ownership(row), **self.render(session, row))

    def create(self, session: Session, principal: Principal, body: C) -> R:
        """Create an object owned by the caller."""
        objects.require_create(principal, self.kind)
        return self.create_row(session, principal, self.build(session, principal, body), body)

    def create_row(self, session: Session, principal: Principal, built: M, body: C) -> R:
        """Add a row `build` made (owned by the caller), under the uniqueness rules."""
        row = objects.new_owned(principal, built)
        owner = row.owner_id if self.unique_per_owner else None
        objects.ensure_unique(session, self.model, row.name, owner_id=owner)
        session.add(row)
        session.flush()
        self.after_create(session, principal, row, body)
        return self.to_wire(session, row)

    def get(self, session: Session, principal: Principal, obj_id: int) -> R:
        """Show one object."""
        return self.to_wire(session, self.load(session, principal, obj_id))

    def load(self, session: Session, principal: Principal, obj_id: int, right: str = "USE") -> M:
        """Fetch a row the caller holds `right` on."""
        return objects.load(session, principal, self.model, self.kind, obj_id, right=right)

    def list(
        self,
        session: Session,
        principal: Principal,
        query: ListQuery,
        params: dict[str, Any] | None = None,
    ) -> Page[R]:
        """List the objects the caller may see, one page at a time."""
        stmt = objects.list_query(self.model, principal, self.kind, query)
        stmt = stmt.where(*self.filters(params or {}))
        rows = session.scalars(stmt).all()
        items, cursor = objects.split_page(rows, query.limit)
        return Page[self.read_type](  # type: ignore[name-defined]
            items=[self.to_wire(session, r) for r in items], next_cursor=cursor
        )

    def update(self, session: Session, principal: Principal, obj_id: int, body: U) -> R:
        """Change an object (MANAGE right), refusing a stale version."""
        row = self.load(session, principal, obj_id, "MANAGE")
        objects.check_version(row, getattr(body, "version", None))
        self.change(session, principal, row, body)
        session.flush()
        return self.to_wire(session, row)

    def rename(self, session: Session, principal: Principal, row: M, name: str) -> None:
        """Rename a row, keeping names unique."""
        owner = row.owner_id if self.unique_per_owner else None
        objects.ensure_unique(session, self.model, name, owner_id=owner, exclude=row.id)
        row.name = name

    def delete(self, session: Session, principal: Principal, obj_id: int) -> None:
        """Delete an object (MANAGE right) once nothing depends on it."""
        row = self.load(session, principal, obj_id, "MANAGE")
        self.before_delete(session, principal, row)
        session.delete(row)
        session.flush()

    def chmod(self, session: Session, principal: Principal, obj_id: int, body: Chmod) -> R:
        """Change an object's permission bits."""
        row = self.load(session, principal, obj_id, "MANAGE")
        objects.chmod(session, principal, self.kind, row, body)
        session.flush()
        return self.to_wire(session, row)

    def chown(self, session: Session, principal: Principal, obj_id: int, body: Chown) -> R:
        """Change an object's owner or group."""
        row = self.load(session, principal, obj_id, "MANAGE")
        objects.chown(session, principal, row, body)
        if body.owner_id is not None and self.unique_per_owner:
            objects.ensure_unique(
                session, self.model, row.name, owner_id=row.owner_id, exclude=row.id
            )
        session.flush()
        return self.to_wire(session, row)
