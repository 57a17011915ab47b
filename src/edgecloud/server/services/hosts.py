"""Hosts: the machines that run workloads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from edgecloud.api import infra as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Cluster, Host, Vm
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services.objects import parse_template_input
from edgecloud.server.services.resource import OwnedResource

HOST_STATE = {name: num for num, name in wire.HOST_STATES.items()}
DONE = 6


class Hosts(OwnedResource[Host, wire.HostCreate, wire.HostUpdate, wire.Host]):
    """Use cases of hosts."""

    kind = "HOST"
    model = Host
    read_type = wire.Host
    unique_per_owner = False

    def build(self, session: Session, principal: Principal, body: wire.HostCreate) -> Host:
        """Return a new host row in state INIT."""
        _require_cluster(session, body.cluster_id)
        return Host(
            name=body.name,
            cluster_id=body.cluster_id,
            hypervisor=body.hypervisor,
            state=HOST_STATE["INIT"],
            total_cpu=body.total_cpu,
            total_memory_mb=body.total_memory_mb,
            template=parse_template_input(body.template),
            transport=body.transport,
            address=body.address or body.name,
            port=body.port,
            root=body.root,
            host_key=body.host_key,
        )

    def change(
        self, session: Session, principal: Principal, row: Host, body: wire.HostUpdate
    ) -> None:
        """Move the host or change its declared capacity and attributes."""
        if body.cluster_id is not None:
            _require_cluster(session, body.cluster_id)
            row.cluster_id = body.cluster_id
        if body.total_cpu is not None:
            row.total_cpu = body.total_cpu
        if body.total_memory_mb is not None:
            row.total_memory_mb = body.total_memory_mb
        if body.template is not None:
            row.template = parse_template_input(body.template)

    def before_delete(self, session: Session, principal: Principal, row: Host) -> None:
        """Refuse while VMs are placed on the host."""
        count = session.scalar(select(func.count()).where(Vm.host_id == row.id, Vm.state != DONE))
        if count:
            raise Conflict(f"host {row.id} still has {count} VM(s)", field="id")

    def render(self, session: Session, row: Host) -> dict[str, Any]:
        """Add state and capacity."""
        return {
            "cluster_id": row.cluster_id,
            "hypervisor": row.hypervisor,
            "state": row.state,
            "state_name": wire.HOST_STATES.get(row.state, str(row.state)),
            "total_cpu": row.total_cpu,
            "total_memory_mb": row.total_memory_mb,
            "used_cpu": row.used_cpu,
            "used_memory_mb": row.used_memory_mb,
            "running_vms": row.running_vms,
            "last_seen": row.last_seen,
            "free_disk_mb": row.free_disk_mb,
            "fenced": row.fenced,
            "transport": row.transport,
            "address": row.address,
            "port": row.port,
            "root": row.root,
            "host_key": row.host_key,
            "node_version": row.node_version,
            "hypervisors": list(row.hypervisors),
            "last_error": row.last_error,
        }

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Filter by cluster and state."""
        terms: list[ColumnElement[bool]] = []
        if params.get("cluster_id") is not None:
            terms.append(Host.cluster_id == params["cluster_id"])
        if params.get("state") is not None:
            terms.append(Host.state == params["state"])
        return terms

    def set_status(
        self, session: Session, principal: Principal, host_id: int, body: wire.HostStatus
    ) -> wire.Host:
        """Enable, disable or set a host offline (ADMIN right)."""
        row = self.load(session, principal, host_id, "ADMIN")
        row.state = {
            "enabled": HOST_STATE["INIT"],
            "disabled": HOST_STATE["DISABLED"],
            "offline": HOST_STATE["OFFLINE"],
        }[body.status]
        if body.status == "enabled":
            row.fenced = False  # the admin vouches for it again after a failure
            row.missed_probes, row.error_since = 0, None
        session.flush()
        return self.to_wire(session, row)


def _require_cluster(session: Session, cluster_id: int) -> None:
    if session.get(Cluster, cluster_id) is None:
        raise InvalidInput("cluster_id", f"cluster {cluster_id} does not exist")
