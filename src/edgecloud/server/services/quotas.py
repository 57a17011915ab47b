"""Quotas per user and group: VMs, CPU, memory, system disk, images, leases."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from edgecloud.api import identity as wire
from edgecloud.server.db.models import Group, Image, Lease, Quota, User, Vm
from edgecloud.server.errors import NotFound, QuotaExceeded

DONE = 6


@dataclass(frozen=True)
class Usage:
    """An amount of every quota'd resource."""

    vms: int = 0
    cpu: float = 0.0
    memory_mb: int = 0
    system_disk_mb: int = 0
    images: int = 0
    leases: int = 0


def usage(session: Session, scope: str, subject_id: int) -> Usage:
    """Sum what a user (scope "user") or a group holds now."""
    vm_col = Vm.owner_id if scope == "user" else Vm.group_id
    vms, cpu, mem, disk = session.execute(
        select(
            func.count(Vm.id),
            func.coalesce(func.sum(Vm.cpu), 0.0),
            func.coalesce(func.sum(Vm.memory_mb), 0),
            func.coalesce(func.sum(Vm.disk_mb), 0),
        ).where(vm_col == subject_id, Vm.state != DONE)
    ).one()
    img_col = Image.owner_id if scope == "user" else Image.group_id
    images = session.scalar(select(func.count(Image.id)).where(img_col == subject_id)) or 0
    leases = (
        session.scalar(select(func.count(Lease.id)).where(_lease_owner(scope, subject_id))) or 0
    )
    return Usage(int(vms), float(cpu), int(mem), int(disk), int(images), int(leases))


def _lease_owner(scope: str, subject_id: int) -> ColumnElement[bool]:
    if scope == "user":
        return Lease.owner_id == subject_id
    members = select(User.id).where(User.group_id == subject_id)
    return Lease.owner_id.in_(members)


def charge(session: Session, user_id: int, group_id: int, delta: Usage) -> None:
    """Refuse `delta` if it would take the user or their group over a quota.

    The user and group rows are locked first (FOR UPDATE on PostgreSQL; SQLite writers are
    serialised already), so two concurrent requests cannot both squeeze under one limit.
    """
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    session.execute(select(Group.id).where(Group.id == group_id).with_for_update())
    for scope, subject in (("user", user_id), ("group", group_id)):
        limits = session.scalar(
            select(Quota).where(Quota.scope == scope, Quota.subject_id == subject)
        )
        if limits is not None:
            _check(scope, subject, limits, usage(session, scope, subject), delta)


def _check(scope: str, subject: int, limits: Quota, used: Usage, delta: Usage) -> None:
    for f in fields(Usage):
        limit = getattr(limits, f.name)
        want = getattr(delta, f.name)
        if limit is None or not want:
            continue
        have = getattr(used, f.name)
        if have + want > limit:
            raise QuotaExceeded(
                f"{scope} {subject} quota {f.name} exceeded: "
                f"using {have:g}, asked for {want:g}, limit {limit:g}",
                field=f"quota.{f.name}",
            )


def show(session: Session, scope: str, subject_id: int) -> wire.Quota:
    """Return the limits and usage of a user or group."""
    _require_subject(session, scope, subject_id)
    row = session.scalar(select(Quota).where(Quota.scope == scope, Quota.subject_id == subject_id))
    limits = (
        wire.QuotaLimits()
        if row is None
        else wire.QuotaLimits(**{f.name: getattr(row, f.name) for f in fields(Usage)})
    )
    return wire.Quota(
        scope=scope,
        subject_id=subject_id,
        limits=limits,
        usage=wire.QuotaUsage(**asdict(usage(session, scope, subject_id))),
    )


def set_limits(
    session: Session, scope: str, subject_id: int, limits: wire.QuotaLimits
) -> wire.Quota:
    """Replace the limits of a user or group (null = unlimited)."""
    _require_subject(session, scope, subject_id)
    row = session.scalar(select(Quota).where(Quota.scope == scope, Quota.subject_id == subject_id))
    if row is None:
        row = Quota(scope=scope, subject_id=subject_id)
        session.add(row)
    for name, value in limits.model_dump().items():
        setattr(row, name, value)
    session.flush()
    return show(session, scope, subject_id)


def _require_subject(session: Session, scope: str, subject_id: int) -> None:
    model = User if scope == "user" else Group
    if session.get(model, subject_id) is None:
        raise NotFound(f"{scope} {subject_id} does not exist", field="id")
