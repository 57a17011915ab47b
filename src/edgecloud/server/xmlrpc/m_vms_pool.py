"""one.vmpool.info, infoextended and monitoring; the history and samples a full VM
document needs.

one.vmpool.info is one SELECT of the columns the short body needs (owner, group and host
names joined), rendered as the rows arrive (m_vms_short). infoextended renders each VM as
one.vm.info does, with its history and last sample read a chunk of VMs at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session, aliased

from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Group, Host, User, Vm, VmHistory, VmSample, now
from edgecloud.server.xmlrpc.core import XML_RPC_API, Ctx, OneError, method
from edgecloud.server.xmlrpc.m_vms_render import (
    Extras,
    LogEntry,
    Sample,
    monitoring_body,
    vm_document,
)
from edgecloud.server.xmlrpc.m_vms_short import SHORT_COLUMNS, cache_of, render_short
from edgecloud.server.xmlrpc.pools import PoolFilter

DONE = 6
CHUNK = 500  # ids per IN (...) list
FULL_COLUMNS = (
    *(c for c in Vm.__table__.columns if c.key not in ("runtime", "resume_from", "version")),
    User.name.label("uname"),
    Group.name.label("gname"),
)


def state_filter(state: int) -> ColumnElement[bool] | None:
    """OpenNebula's state argument: -2 any, -1 any but DONE, else that STATE."""
    if state < -2:
        raise OneError(XML_RPC_API, f"state {state} is not -2, -1 or a VM state")
    if state == -2:
        return None
    return Vm.state != DONE if state == -1 else Vm.state == state


def pool_statement(
    columns: Iterable[Any], principal: Principal, flt: PoolFilter, state: int
) -> Select[Any]:
    """The VMs a pool call lists, with their owner's and group's names (and host)."""
    stmt = (
        select(*columns)
        .select_from(Vm)
        .join(User, User.id == Vm.owner_id)
        .join(Group, Group.id == Vm.group_id)
        .outerjoin(Host, Host.id == Vm.host_id)
    )
    where = state_filter(state)
    if where is not None:
        stmt = stmt.where(where)
    return flt.apply(stmt, "VM", principal)


@method("one.vmpool.info", int, int, int, int, defaults=(-2, -1, -1, -1))
def pool_info(ctx: Ctx, flag: int, start: int, end: int, state: int) -> str:
    """The VMs the caller may see, in the short form."""
    stmt = pool_statement(SHORT_COLUMNS, ctx.principal, PoolFilter(flag, start, end), state)
    with ctx.frontend.store.read() as session:
        # Rows are rendered as they are fetched: none outlive their VM's text.
        return render_short(session.connection().execute(stmt), cache_of(ctx.frontend.store))


@method("one.vmpool.infoextended", int, int, int, int, defaults=(-2, -1, -1, -1))
def pool_infoextended(ctx: Ctx, flag: int, start: int, end: int, state: int) -> str:
    """The VMs the caller may see, each as one.vm.info shows it."""
    stmt = pool_statement(FULL_COLUMNS, ctx.principal, PoolFilter(flag, start, end), state)
    with ctx.frontend.store.read() as session:
        rows = session.execute(stmt).all()
        extras = load_extras(session, [(r.id, r.uname, r.gname) for r in rows])
    return "".join(("<VM_POOL>", *(vm_document(r, extras[r.id]) for r in rows), "</VM_POOL>"))


def load_extras(session: Session, vms: Sequence[tuple[int, str, str]]) -> dict[int, Extras]:
    """History and last sample of VMs (id, owner's name, group's name), a query per chunk."""
    entries: dict[int, list[LogEntry]] = {vm_id: [] for vm_id, _, _ in vms}
    samples: dict[int, Sample] = {}
    ids = list(entries)
    for begin in range(0, len(ids), CHUNK):
        chunk = ids[begin : begin + CHUNK]
        log = session.execute(
            select(
                VmHistory.vm_id,
                VmHistory.action,
                VmHistory.user_id,
                VmHistory.host_id,
                VmHistory.state,
                VmHistory.lcm_state,
                VmHistory.at,
                Host.name,
                Host.cluster_id,
            )
            .outerjoin(Host, Host.id == VmHistory.host_id)
            .where(VmHistory.vm_id.in_(chunk))
            .order_by(VmHistory.id)
        )
        for vm_id, action, user_id, host_id, state, lcm, at, host_name, cluster_id in log:
            entries[vm_id].append(
                LogEntry(action, user_id, host_id, state, lcm, at, host_name, cluster_id)
            )
        for vm_id, sample in _last_samples(session, chunk):
            samples[vm_id] = sample
    return {
        vm_id: Extras(uname, gname, entries[vm_id], samples.get(vm_id))
        for vm_id, uname, gname in vms
    }


def _last_samples(session: Session, ids: list[int]) -> list[tuple[int, Sample]]:
    latest = (
        select(VmSample.vm_id, func.max(VmSample.at).label("at"))
        .where(VmSample.vm_id.in_(ids))
        .group_by(VmSample.vm_id)
        .subquery()
    )
    rows = session.execute(
        select(
            VmSample.vm_id,
            VmSample.at,
            VmSample.cpu,
            VmSample.memory_mb,
            VmSample.net_rx,
            VmSample.net_tx,
        )
        .join(latest, and_(latest.c.vm_id == VmSample.vm_id, latest.c.at == VmSample.at))
        .order_by(VmSample.id)
    )
    return [(vm_id, Sample(at, cpu, mem, rx, tx)) for vm_id, at, cpu, mem, rx, tx in rows]


def monitoring_data(records: Iterable[Sequence[Any]]) -> str:
    """MONITORING_DATA of (vm id, at, cpu, memory_mb, net_rx, net_tx) records."""
    body = "".join(
        f"<MONITORING>{monitoring_body(r[0], Sample(r[1], r[2], r[3], r[4], r[5]))}</MONITORING>"
        for r in records
    )
    return f"<MONITORING_DATA>{body}</MONITORING_DATA>"


SAMPLE_COLUMNS: tuple[Any, ...] = (
    VmSample.vm_id,
    VmSample.at,
    VmSample.cpu,
    VmSample.memory_mb,
    VmSample.net_rx,
    VmSample.net_tx,
)


@method("one.vmpool.monitoring", int, int, defaults=(-1,))
def pool_monitoring(ctx: Ctx, flag: int, seconds: int) -> str:
    """Samples of the VMs the caller may see: -1 all kept, 0 the last one, n the last n s."""
    stmt = select(*SAMPLE_COLUMNS).select_from(Vm).join(VmSample, VmSample.vm_id == Vm.id)
    if seconds > 0:
        stmt = stmt.where(VmSample.at >= now() - seconds)
    elif seconds == 0:
        other = aliased(VmSample)
        latest = select(func.max(other.at)).where(other.vm_id == Vm.id).scalar_subquery()
        stmt = stmt.where(VmSample.at == latest)
    stmt = PoolFilter(flag, -1, -1).apply(stmt, "VM", ctx.principal).order_by(VmSample.at)
    with ctx.frontend.store.read() as session:
        return monitoring_data(session.execute(stmt))
