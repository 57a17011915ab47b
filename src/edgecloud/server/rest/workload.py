"""REST routes of images, VM templates, VMs and operations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.common import Page
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Operation, Vm
from edgecloud.server.lifecycle import netsync
from edgecloud.server.rest.crud import ERRORS, IdPath, crud_router
from edgecloud.server.rest.deps import (
    FrontEnd,
    FrontEndDep,
    IdQuery,
    ListQueryDep,
    PrincipalDep,
    Seconds,
)
from edgecloud.server.rest.images import add_image_routes
from edgecloud.server.rest.vm_bundle import add_bundle_routes
from edgecloud.server.rest.vm_disk_changes import add_config_routes, add_disk_change_routes
from edgecloud.server.rest.vm_disks import add_disk_routes
from edgecloud.server.services import guests, monitoring, nic_groups, operations, vm_nics
from edgecloud.server.services.images import Images
from edgecloud.server.services.vm_templates import VmTemplates
from edgecloud.server.services.vms import SHORT_FIELDS, Vms

images, templates, vms = Images(), VmTemplates(), Vms()
StateQuery = Annotated[int | None, Query(ge=0, le=255)]
NicIdPath = Annotated[int, Path(ge=0, le=255)]


def image_filters(datastore_id: IdQuery = None, state: StateQuery = None) -> dict[str, Any]:
    """Read image list filters."""
    return {"datastore_id": datastore_id, "state": state}


def vm_filters(
    state: StateQuery = None,
    host_id: IdQuery = None,
    cluster_id: IdQuery = None,
    include_done: bool = False,
) -> dict[str, Any]:
    """Read VM list filters."""
    return {
        "state": state,
        "host_id": host_id,
        "cluster_id": cluster_id,
        "include_done": include_done,
    }


def _answer(session: Session, row: Vm, op: Operation | None) -> wire.VmActionAccepted:
    session.flush()
    return wire.VmActionAccepted(
        vm=vms.to_wire(session, row),
        operation=None if op is None else operations.to_wire(session, op),
    )


def _accepted(frontend: FrontEnd, out: wire.VmActionAccepted) -> wire.VmActionAccepted:
    """Wake the engine for the queued operation and tell watchers the VM changed."""
    frontend.vm_changed(out.vm)
    return out


def routers() -> list[APIRouter]:
    """Return the routers of this module."""
    image_router = crud_router(
        images,
        path="/images",
        create=wire.ImageCreate,
        update=wire.ImageUpdate,
        filters=image_filters,
    )
    add_image_routes(image_router, images)
    template_router = crud_router(
        templates, path="/templates", create=wire.VmTemplateCreate, update=wire.VmTemplateUpdate
    )
    vm_router = crud_router(
        vms,
        path="/vms",
        create=wire.VmCreate,
        update=wire.VmUpdate,
        with_list=False,
        after_write=FrontEnd.wake,
    )
    add_disk_routes(vm_router, images)
    add_disk_change_routes(vm_router, _answer, _accepted)
    add_config_routes(vm_router, _answer, _accepted)
    add_bundle_routes(vm_router, vms, images)
    op_router = APIRouter(prefix="/operations", tags=["operations"], responses=ERRORS)

    @template_router.post(
        "/{obj_id}/instantiate",
        response_model=wire.Vm,
        status_code=201,
        summary="Create a VM from it",
    )
    def instantiate(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.Instantiate
    ) -> wire.Vm:
        create = wire.VmCreate(
            name=body.name, template_id=obj_id, hold=body.hold, template=body.template
        )
        with frontend.store.write() as session:
            out = vms.create(session, principal, create)
        frontend.wake()
        return out

    @vm_router.get(
        "",
        summary="List VMs",
        response_model=Page[wire.Vm] | Page[wire.VmShort],
        description="view=short: the short form (fast at 100,000 VMs); view=full: every field.",
    )
    def list_vms(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        query: ListQueryDep,
        state: StateQuery = None,
        host_id: IdQuery = None,
        cluster_id: IdQuery = None,
        include_done: bool = False,
        view: Literal["short", "full"] = "short",
    ) -> Any:
        params = vm_filters(state, host_id, cluster_id, include_done)
        with frontend.store.read() as session:
            if view == "full":
                return vms.list(session, principal, query, params)
            rows, cursor = vms.list_short(session, principal, query, params)
        # The hot path: tuples straight to JSON, no model objects in between.
        items = [dict(zip(SHORT_FIELDS, r, strict=True)) for r in rows]
        return Response(
            orjson.dumps({"items": items, "next_cursor": cursor}), media_type="application/json"
        )

    @vm_router.post(
        "/{obj_id}/actions",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Request an action",
    )
    def act(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.VmAction
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            out = vms.act(session, principal, obj_id, body)
        return _accepted(frontend, out)

    @vm_router.post(
        "/{obj_id}/nics",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Attach a NIC (hot-plugged into a running VM)",
    )
    def nic_attach(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.NicAttach
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row, op = vm_nics.attach(session, principal, obj_id, body)
            out = _answer(session, row, op)
        return _accepted(frontend, out)

    @vm_router.delete(
        "/{obj_id}/nics/{nic_id}",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Detach a NIC (unplugged from a running VM) and give its lease back",
    )
    def nic_detach(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        nic_id: NicIdPath,
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row, op = vm_nics.detach(session, principal, obj_id, nic_id)
            out = _answer(session, row, op)
        return _accepted(frontend, out)

    @vm_router.get(
        "/{obj_id}/monitoring", response_model=list[wire.Sample], summary="Monitoring samples"
    )
    def vm_monitoring(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, seconds: Seconds = 3600
    ) -> list[wire.Sample]:
        with frontend.store.read() as session:
            vms.load(session, principal, obj_id)
            return monitoring.vm_samples(session, obj_id, seconds=seconds)

    def _nic_group(
        frontend: FrontEnd,
        principal: Principal,
        vm_id: int,
        nic_id: int,
        group_id: int,
        attach: bool,
    ) -> wire.Vm:
        with frontend.store.write() as session:
            row = nic_groups.change(session, principal, vm_id, nic_id, group_id, attach=attach)
            out = vms.to_wire(session, row)
        netsync.sync_vm_soon(frontend.store, frontend.drivers, vm_id)
        return out

    @vm_router.put(
        "/{obj_id}/nics/{nic_id}/security-groups/{group_id}",
        response_model=wire.Vm,
        summary="Attach a security group to a NIC (running guests are updated)",
    )
    def nic_group_attach(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        nic_id: NicIdPath,
        group_id: IdPath,
    ) -> wire.Vm:
        return _nic_group(frontend, principal, obj_id, nic_id, group_id, True)

    @vm_router.delete(
        "/{obj_id}/nics/{nic_id}/security-groups/{group_id}",
        response_model=wire.Vm,
        summary="Detach a security group from a NIC",
    )
    def nic_group_detach(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        nic_id: NicIdPath,
        group_id: IdPath,
    ) -> wire.Vm:
        return _nic_group(frontend, principal, obj_id, nic_id, group_id, False)

    @vm_router.get(
        "/{obj_id}/console-log", response_model=wire.ConsoleLog, summary="The guest's console"
    )
    def console_log(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        tail_bytes: Annotated[int, Query(ge=1, le=guests.MAX_CONSOLE_BYTES)] = 65536,
    ) -> wire.ConsoleLog:
        with frontend.store.write() as session:
            target = guests.console_target(session, principal, obj_id)
        text = guests.console_log(frontend.drivers, target, tail_bytes)
        return wire.ConsoleLog(vm_id=obj_id, text=text)

    @vm_router.get(
        "/{obj_id}/history", response_model=list[wire.HistoryRecord], summary="What happened to it"
    )
    def history(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> list[wire.HistoryRecord]:
        with frontend.store.read() as session:
            return vms.history(session, principal, obj_id)

    @op_router.get("", response_model=Page[wire.Operation], summary="List operations")
    def list_operations(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        query: ListQueryDep,
        state: Literal["pending", "running", "done", "failed", "rolled_back"] | None = None,
        object_type: Literal["VM", "HOST", "IMAGE", "PROVISION"] | None = None,
        object_id: IdQuery = None,
    ) -> Page[wire.Operation]:
        with frontend.store.read() as session:
            return operations.list_page(
                session,
                principal,
                limit=query.limit,
                cursor=query.cursor,
                state=state,
                object_type=object_type,
                object_id=object_id,
            )

    @op_router.get(
        "/{obj_id}", response_model=wire.Operation, summary="Show an operation and its steps"
    )
    def get_operation(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> wire.Operation:
        with frontend.store.read() as session:
            return operations.get(session, principal, obj_id)

    return [image_router, template_router, vm_router, op_router]
