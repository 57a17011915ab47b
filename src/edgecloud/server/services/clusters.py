"""Clusters: edge sites grouping hosts, datastores and vnets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecloud.api import infra as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Cluster, ClusterDatastore, ClusterVnet, Datastore, Host, Vnet
from edgecloud.server.errors import Conflict, InvalidInput, NotFound
from edgecloud.server.services.objects import load, parse_template_input
from edgecloud.server.services.resource import OwnedResource


class Clusters(OwnedResource[Cluster, wire.ClusterCreate, wire.ClusterUpdate, wire.Cluster]):
    """Use cases of clusters."""

    kind = "CLUSTER"
    model = Cluster
    read_type = wire.Cluster
    unique_per_owner = False

    def build(self, session: Session, principal: Principal, body: wire.ClusterCreate) -> Cluster:
        """Return a new cluster row."""
        return Cluster(
            name=body.name,
            reserved_cpu=body.reserved_cpu,
            reserved_memory_mb=body.reserved_memory_mb,
            recreate_on_host_failure=body.recreate_on_host_failure,
            host_failure_grace=body.host_failure_grace,
            template=parse_template_input(body.template),
        )

    def change(
        self, session: Session, principal: Principal, row: Cluster, body: wire.ClusterUpdate
    ) -> None:
        """Apply reservations and attributes."""
        if body.reserved_cpu is not None:
            row.reserved_cpu = body.reserved_cpu
        if body.reserved_memory_mb is not None:
            row.reserved_memory_mb = body.reserved_memory_mb
        if body.recreate_on_host_failure is not None:
            row.recreate_on_host_failure = body.recreate_on_host_failure
        if body.host_failure_grace is not None:
            row.host_failure_grace = body.host_failure_grace
        if body.template is not None:
            row.template = parse_template_input(body.template)

    def before_delete(self, session: Session, principal: Principal, row: Cluster) -> None:
        """Refuse while hosts are in the cluster; the default cluster stays."""
        if row.id == 0:
            raise Conflict("the default cluster 0 cannot be deleted", field="id")
        hosts = session.scalar(select(func.count()).where(Host.cluster_id == row.id))
        if hosts:
            raise Conflict(f"cluster {row.id} still has {hosts} host(s)", field="id")

    def render(self, session: Session, row: Cluster) -> dict[str, Any]:
        """Add reservations and member ids."""
        return {
            "reserved_cpu": row.reserved_cpu,
            "reserved_memory_mb": row.reserved_memory_mb,
            "recreate_on_host_failure": row.recreate_on_host_failure,
            "host_failure_grace": row.host_failure_grace,
            "host_ids": list(session.scalars(select(Host.id).where(Host.cluster_id == row.id))),
            "datastore_ids": list(
                session.scalars(
                    select(ClusterDatastore.datastore_id).where(
                        ClusterDatastore.cluster_id == row.id
                    )
                )
            ),
            "vnet_ids": list(
                session.scalars(select(ClusterVnet.vnet_id).where(ClusterVnet.cluster_id == row.id))
            ),
        }

    def link(
        self, session: Session, principal: Principal, cluster_id: int, kind: str, obj_id: int
    ) -> None:
        """Make a datastore ("DATASTORE") or vnet ("NET") available in a cluster."""
        self.load(session, principal, cluster_id, "ADMIN")
        link_model, column, target = _link_parts(kind)
        load(session, principal, target, kind, obj_id, right="ADMIN")
        if session.get(link_model, (cluster_id, obj_id)) is None:
            session.add(link_model(cluster_id=cluster_id, **{column: obj_id}))
            session.flush()

    def unlink(
        self, session: Session, principal: Principal, cluster_id: int, kind: str, obj_id: int
    ) -> None:
        """Remove a datastore or vnet from a cluster."""
        self.load(session, principal, cluster_id, "ADMIN")
        link_model, _column, _target = _link_parts(kind)
        link = session.get(link_model, (cluster_id, obj_id))
        if link is None:
            raise NotFound(f"{kind.lower()} {obj_id} is not in cluster {cluster_id}", field="id")
        session.delete(link)
        session.flush()


def _link_parts(kind: str) -> tuple[Any, str, Any]:
    if kind == "DATASTORE":
        return ClusterDatastore, "datastore_id", Datastore
    return ClusterVnet, "vnet_id", Vnet


def set_cluster_links(
    session: Session, link_model: Any, column: str, obj_id: int, cluster_ids: list[int]
) -> None:
    """Put a new datastore or vnet into the given clusters, checking they exist."""
    for index, cid in enumerate(dict.fromkeys(cluster_ids)):
        if session.get(Cluster, cid) is None:
            raise InvalidInput(f"cluster_ids[{index}]", f"cluster {cid} does not exist")
        session.add(link_model(cluster_id=cid, **{column: obj_id}))


def cluster_ids_of(session: Session, link_model: Any, column: str, obj_id: int) -> list[int]:
    """Return the clusters a datastore or vnet belongs to."""
    stmt = select(link_model.cluster_id).where(getattr(link_model, column) == obj_id)
    return list(session.scalars(stmt))
