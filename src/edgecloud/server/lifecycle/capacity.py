"""Host capacity: reserve a VM's CPU and memory on a host, re-checked under a row lock.

The scheduler plans on a snapshot; this is where a placement becomes real, so two
workers (or two front-end processes) can never overcommit a host: the host row is
locked (FOR UPDATE on PostgreSQL; SQLite writers are serialised) and the numbers are
read again before they change.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.db.models import Cluster, Host, Vm
from edgecloud.server.errors import Exhausted, InvalidInput

ELIGIBLE_STATES = frozenset({0, 1, 2})  # INIT, MONITORING_MONITORED, MONITORED


def free_capacity(host: Host, cluster: Cluster | None) -> tuple[float, int]:
    """Return the CPU and memory still free on a host, after the cluster's reservations."""
    reserved_cpu = cluster.reserved_cpu if cluster else 0.0
    reserved_mem = cluster.reserved_memory_mb if cluster else 0
    free_cpu = host.total_cpu - reserved_cpu - host.used_cpu
    free_mem = host.total_memory_mb - reserved_mem - host.used_memory_mb
    return free_cpu, free_mem


def reserve(session: Session, host_id: int, vm: Vm, *, field: str = "host_id") -> Host:
    """Take the VM's CPU and memory on the host, or refuse with the numbers."""
    host = session.scalars(select(Host).where(Host.id == host_id).with_for_update()).first()
    if host is None:
        raise InvalidInput(field, f"host {host_id} does not exist")
    if host.state not in ELIGIBLE_STATES or host.fenced:
        raise Exhausted(
            f"{field}: host {host_id} is not accepting VMs (state {host.state})", field=field
        )
    free_cpu, free_mem = free_capacity(host, session.get(Cluster, host.cluster_id))
    if vm.cpu > free_cpu + 1e-9 or vm.memory_mb > free_mem:
        raise Exhausted(
            f"{field}: host {host_id} has {free_cpu:g} CPU and {free_mem} MiB free; "
            f"VM {vm.id} needs {vm.cpu:g} CPU and {vm.memory_mb} MiB",
            field=field,
        )
    _add(host, vm)
    return host


def take(session: Session, host_id: int, vm: Vm) -> None:
    """Count the VM's CPU and memory on the host without checking room (an administrator's
    forced resize)."""
    host = session.scalars(select(Host).where(Host.id == host_id).with_for_update()).first()
    if host is not None:
        _add(host, vm)


def _add(host: Host, vm: Vm) -> None:
    host.used_cpu += vm.cpu
    host.used_memory_mb += vm.memory_mb
    host.running_vms += 1


def release(session: Session, host_id: int | None, vm: Vm) -> None:
    """Give a VM's CPU and memory on a host back."""
    if host_id is None:
        return
    host = session.scalars(select(Host).where(Host.id == host_id).with_for_update()).first()
    if host is None:
        return
    host.used_cpu = max(0.0, host.used_cpu - vm.cpu)
    host.used_memory_mb = max(0, host.used_memory_mb - vm.memory_mb)
    host.running_vms = max(0, host.running_vms - 1)
