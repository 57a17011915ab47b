"""Reading monitoring samples of hosts and VMs (the monitor writes them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api.workload import Sample
from edgecloud.server.db.models import HostSample, VmSample, now


def host_samples(session: Session, host_id: int, *, seconds: int) -> list[Sample]:
    """Return a host's samples of the last `seconds`, oldest first."""
    rows = session.execute(
        select(HostSample.at, HostSample.used_cpu, HostSample.used_memory_mb)
        .where(HostSample.host_id == host_id, HostSample.at >= now() - seconds)
        .order_by(HostSample.at)
    )
    return [Sample(at=at, cpu=cpu, memory_mb=mem) for at, cpu, mem in rows]


def vm_samples(session: Session, vm_id: int, *, seconds: int) -> list[Sample]:
    """Return a VM's samples of the last `seconds`, oldest first."""
    rows = session.execute(
        select(VmSample.at, VmSample.cpu, VmSample.memory_mb, VmSample.net_rx, VmSample.net_tx)
        .where(VmSample.vm_id == vm_id, VmSample.at >= now() - seconds)
        .order_by(VmSample.at)
    )
    return [Sample(at=a, cpu=c, memory_mb=m, net_rx=rx, net_tx=tx) for a, c, m, rx, tx in rows]
