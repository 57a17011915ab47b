"""Operations: long actions as persisted steps that clients poll by id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.common import Page
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Operation, OperationStep, now
from edgecloud.server.errors import NotFound
from edgecloud.server.services.objects import split_page

ACTIVE_STATES = ("pending", "running")


def start(
    session: Session,
    *,
    kind: str,
    object_type: str,
    object_id: int,
    owner_id: int,
    params: dict[str, Any],
    steps: list[str] | None = None,
) -> Operation:
    """Record a new pending operation and its steps."""
    ts = now()
    op = Operation(
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        owner_id=owner_id,
        state="pending",
        params=params,
        created_at=ts,
        updated_at=ts,
    )
    session.add(op)
    session.flush()
    for seq, name in enumerate(steps or []):
        session.add(OperationStep(operation_id=op.id, seq=seq, name=name, state="pending"))
    return op


def active_for(session: Session, object_type: str, object_id: int) -> Operation | None:
    """Return the pending or running operation on an object, if any."""
    stmt = select(Operation).where(
        Operation.object_type == object_type,
        Operation.object_id == object_id,
        Operation.state.in_(ACTIVE_STATES),
    )
    return session.scalars(stmt.limit(1)).first()


def to_wire(session: Session, op: Operation) -> wire.Operation:
    """Render an operation with its steps."""
    steps = session.scalars(
        select(OperationStep).where(OperationStep.operation_id == op.id).order_by(OperationStep.seq)
    )
    return wire.Operation(
        id=op.id,
        kind=op.kind,
        object_type=op.object_type,
        object_id=op.object_id,
        owner_id=op.owner_id,
        state=op.state,
        params=op.params,
        error=op.error,
        created_at=op.created_at,
        updated_at=op.updated_at,
        steps=[wire.OperationStep.model_validate(s) for s in steps],
    )


def _visible(principal: Principal) -> ColumnElement[bool]:
    return Operation.owner_id == principal.user_id


def get(session: Session, principal: Principal, op_id: int) -> wire.Operation:
    """Show an operation the caller started (admins see all)."""
    op = session.get(Operation, op_id)
    if op is None or (not principal.is_admin and op.owner_id != principal.user_id):
        raise NotFound(f"operation {op_id} does not exist", field="id")
    return to_wire(session, op)


def list_page(
    session: Session,
    principal: Principal,
    *,
    limit: int,
    cursor: int | None,
    state: str | None,
    object_type: str | None,
    object_id: int | None,
) -> Page[wire.Operation]:
    """List operations, newest id last, filtered by state and object."""
    stmt = select(Operation).order_by(Operation.id).limit(limit + 1)
    if not principal.is_admin:
        stmt = stmt.where(_visible(principal))
    if cursor is not None:
        stmt = stmt.where(Operation.id > cursor)
    if state:
        stmt = stmt.where(Operation.state == state)
    if object_type:
        stmt = stmt.where(Operation.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(Operation.object_id == object_id)
    items, next_cursor = split_page(session.scalars(stmt).all(), limit)
    return Page[wire.Operation](items=[to_wire(session, o) for o in items], next_cursor=next_cursor)
