"""REST routes of clusters, hosts and datastores."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from edgecloud.api import infra as wire
from edgecloud.api.workload import Sample
from edgecloud.server.db.models import Host
from edgecloud.server.monitor.monitor import host_change
from edgecloud.server.rest.crud import IdPath, crud_router
from edgecloud.server.rest.deps import FrontEnd, FrontEndDep, IdQuery, PrincipalDep, Seconds
from edgecloud.server.services import guests, monitoring
from edgecloud.server.services.clusters import Clusters
from edgecloud.server.services.datastores import Datastores
from edgecloud.server.services.hosts import Hosts

clusters, hosts, datastores = Clusters(), Hosts(), Datastores()
Member = Literal["datastores", "vnets"]


def host_filters(
    cluster_id: IdQuery = None, state: Annotated[int | None, Query(ge=0, le=255)] = None
) -> dict[str, Any]:
    """Read host list filters."""
    return {"cluster_id": cluster_id, "state": state}


def datastore_filters(kind: wire.DatastoreKind | None = None) -> dict[str, Any]:
    """Read datastore list filters."""
    return {"kind": kind}


def routers() -> list[APIRouter]:
    """Return the routers of this module."""
    cluster_router = crud_router(
        clusters, path="/clusters", create=wire.ClusterCreate, update=wire.ClusterUpdate
    )
    host_router = crud_router(
        hosts,
        path="/hosts",
        create=wire.HostCreate,
        update=wire.HostUpdate,
        filters=host_filters,
        after_write=FrontEnd.wake_monitor,
    )
    ds_router = crud_router(
        datastores,
        path="/datastores",
        create=wire.DatastoreCreate,
        update=wire.DatastoreUpdate,
        filters=datastore_filters,
    )

    @host_router.get(
        "/{obj_id}/monitoring", response_model=list[Sample], summary="Monitoring samples"
    )
    def host_monitoring(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, seconds: Seconds = 3600
    ) -> list[Sample]:
        with frontend.store.read() as session:
            hosts.load(session, principal, obj_id)
            return monitoring.host_samples(session, obj_id, seconds=seconds)

    @host_router.post(
        "/{obj_id}/status", response_model=wire.Host, summary="Enable, disable, offline"
    )
    def host_status(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.HostStatus
    ) -> wire.Host:
        with frontend.store.write() as session:
            out = hosts.set_status(session, principal, obj_id, body)
            row = session.get(Host, obj_id)  # loaded by set_status: no second query
            assert row is not None
            change = host_change(row)
        frontend.events.publish("host", **change)
        return out

    @host_router.post(
        "/{obj_id}/sync", response_model=wire.Host, summary="Copy the node code to the host"
    )
    def host_sync(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> wire.Host:
        with frontend.store.write() as session:
            target = guests.sync_target(session, principal, obj_id)
        version = guests.sync_node(frontend.drivers, target)
        with frontend.store.write() as session:
            guests.record_sync(session, obj_id, version)
        with frontend.store.read() as session:
            return hosts.get(session, principal, obj_id)

    @cluster_router.put(
        "/{obj_id}/{member}/{member_id}", status_code=204, summary="Add a datastore or vnet"
    )
    def cluster_add(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        member: Member,
        member_id: IdPath,
    ) -> Response:
        kind = "DATASTORE" if member == "datastores" else "NET"
        with frontend.store.write() as session:
            clusters.link(session, principal, obj_id, kind, member_id)
        return Response(status_code=204)

    @cluster_router.delete(
        "/{obj_id}/{member}/{member_id}", status_code=204, summary="Remove a datastore or vnet"
    )
    def cluster_remove(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        member: Member,
        member_id: IdPath,
    ) -> Response:
        kind = "DATASTORE" if member == "datastores" else "NET"
        with frontend.store.write() as session:
            clusters.unlink(session, principal, obj_id, kind, member_id)
        return Response(status_code=204)

    return [cluster_router, host_router, ds_router]
