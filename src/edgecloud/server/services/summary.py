"""The cloud at a glance, as the caller may see it: counts by state and capacity per cluster.

Every figure is one GROUP BY under the caller's visibility condition, never a walk over
objects, so the dashboard costs the same at 100 VMs and at 100,000.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecloud.api.infra import HOST_STATES
from edgecloud.api.states import VM_STATE, vm_state_name
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Cluster, Host, Vm
from edgecloud.server.db.provision import Provision

DONE = VM_STATE["DONE"]


def summary(session: Session, principal: Principal) -> dict[str, Any]:
    """Return VMs by state, hosts by state and clusters with their capacity."""
    vm_rows = session.execute(
        select(Vm.state, func.count())
        .where(Vm.state != DONE, principal.visible("VM"))
        .group_by(Vm.state)
    ).all()
    host_rows = session.execute(
        select(Host.state, func.count()).where(principal.visible("HOST")).group_by(Host.state)
    ).all()
    capacity = session.execute(
        select(
            Host.cluster_id,
            func.count(),
            func.coalesce(func.sum(Host.total_cpu), 0.0),
            func.coalesce(func.sum(Host.used_cpu), 0.0),
            func.coalesce(func.sum(Host.total_memory_mb), 0),
            func.coalesce(func.sum(Host.used_memory_mb), 0),
        )
        .where(principal.visible("HOST"))
        .group_by(Host.cluster_id)
    ).all()
    by_cluster = {row[0]: row[1:] for row in capacity}
    providers = dict(
        session.execute(
            select(Provision.cluster_id, Provision.provider).where(
                Provision.cluster_id.is_not(None)
            )
        ).all()
    )
    clusters = []
    for cid, name, template in session.execute(
        select(Cluster.id, Cluster.name, Cluster.template)
        .where(principal.visible("CLUSTER"))
        .order_by(Cluster.id)
    ):
        hosts, cpu, used_cpu, mem, used_mem = by_cluster.get(cid, (0, 0.0, 0.0, 0, 0))
        attrs = template or {}
        clusters.append(
            {
                "id": cid,
                "name": name,
                "provider": str(attrs.get("PROVIDER") or providers.get(cid) or "onprem"),
                "site": str(attrs.get("SITE") or name),
                "hosts": hosts,
                "total_cpu": float(cpu),
                "used_cpu": float(used_cpu),
                "total_memory_mb": int(mem),
                "used_memory_mb": int(used_mem),
            }
        )
    return {
        "vms_by_state": {vm_state_name(s): n for s, n in sorted(vm_rows)},
        "hosts_by_state": {HOST_STATES.get(s, str(s)): n for s, n in sorted(host_rows)},
        "clusters": clusters,
        "total_cpu": sum(c["total_cpu"] for c in clusters),
        "used_cpu": sum(c["used_cpu"] for c in clusters),
        "total_memory_mb": sum(c["total_memory_mb"] for c in clusters),
        "used_memory_mb": sum(c["used_memory_mb"] for c in clusters),
    }
