"""REST routes of virtual networks (ranges, leases) and security groups."""

from __future__ import annotations

from fastapi import APIRouter, Response

from edgecloud.api import network as wire
from edgecloud.server.rest.crud import IdPath, crud_router
from edgecloud.server.rest.deps import FrontEndDep, PrincipalDep
from edgecloud.server.services.secgroups import SecurityGroups
from edgecloud.server.services.vnets import Vnets

vnets, secgroups = Vnets(), SecurityGroups()


def routers() -> list[APIRouter]:
    """Return the routers of this module."""
    vnet_router = crud_router(vnets, path="/vnets", create=wire.VnetCreate, update=wire.VnetUpdate)
    sg_router = crud_router(
        secgroups,
        path="/secgroups",
        create=wire.SecurityGroupCreate,
        update=wire.SecurityGroupUpdate,
        after_update=lambda frontend, group_id: frontend.sync_security_group(group_id),
    )

    @vnet_router.post(
        "/{obj_id}/ars", response_model=wire.Vnet, status_code=201, summary="Add an address range"
    )
    def add_range(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.AddressRangeIn
    ) -> wire.Vnet:
        with frontend.store.write() as session:
            return vnets.add_range(session, principal, obj_id, body)

    @vnet_router.delete(
        "/{obj_id}/ars/{ar_id}", response_model=wire.Vnet, summary="Remove an address range"
    )
    def remove_range(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, ar_id: IdPath
    ) -> wire.Vnet:
        with frontend.store.write() as session:
            return vnets.remove_range(session, principal, obj_id, ar_id)

    @vnet_router.post(
        "/{obj_id}/reserve",
        response_model=wire.Vnet,
        status_code=201,
        summary="Reserve addresses as a vnet of your own",
    )
    def reserve(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.ReserveRequest
    ) -> wire.Vnet:
        with frontend.store.write() as session:
            return vnets.reserve(session, principal, obj_id, body)

    @vnet_router.get("/{obj_id}/leases", response_model=list[wire.Lease], summary="List leases")
    def list_leases(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> list[wire.Lease]:
        with frontend.store.read() as session:
            return vnets.leases(session, principal, obj_id)

    @vnet_router.post(
        "/{obj_id}/leases",
        response_model=wire.Lease,
        status_code=201,
        summary="Allocate or hold an address",
    )
    def take_lease(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.LeaseRequest
    ) -> wire.Lease:
        with frontend.store.write() as session:
            return vnets.take_lease(session, principal, obj_id, body)

    @vnet_router.delete(
        "/{obj_id}/leases/{lease_id}", status_code=204, summary="Release an address"
    )
    def release_lease(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, lease_id: IdPath
    ) -> Response:
        with frontend.store.write() as session:
            vnets.release_lease(session, principal, obj_id, lease_id)
        return Response(status_code=204)

    return [vnet_router, sg_router]
