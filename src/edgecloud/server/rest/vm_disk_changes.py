"""Routes that attach, detach and grow a VM's disks (see services.vm_disk_changes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.db.models import Operation, Vm
from edgecloud.server.rest.crud import IdPath
from edgecloud.server.rest.deps import FrontEnd, FrontEndDep, PrincipalDep
from edgecloud.server.services import vm_config, vm_disk_changes

DiskIdPath = Annotated[int, Path(ge=0, le=255)]
Answer = Callable[[Session, Vm, Operation | None], wire.VmActionAccepted]
Accepted = Callable[[FrontEnd, wire.VmActionAccepted], wire.VmActionAccepted]


def add_disk_change_routes(router: APIRouter, answer: Answer, accepted: Accepted) -> None:
    """Add POST /vms/{id}/disks, DELETE /vms/{id}/disks/{disk_id} and .../resize."""

    @router.post(
        "/{obj_id}/disks",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Attach a disk: an image, or a new volatile disk (hot-plugged when running)",
    )
    def disk_attach(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.DiskAttach
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row, op = vm_disk_changes.attach(session, principal, obj_id, body)
            out = answer(session, row, op)
        return accepted(frontend, out)

    @router.delete(
        "/{obj_id}/disks/{disk_id}",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Detach a disk (unplugged from a running VM; a persistent one copied back)",
    )
    def disk_detach(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, disk_id: DiskIdPath
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row, op = vm_disk_changes.detach(session, principal, obj_id, disk_id)
            out = answer(session, row, op)
        return accepted(frontend, out)

    @router.post(
        "/{obj_id}/disks/{disk_id}/resize",
        response_model=wire.VmActionAccepted,
        status_code=202,
        summary="Grow a disk (live on a running VM)",
    )
    def disk_resize(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        disk_id: DiskIdPath,
        body: wire.DiskResize,
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row, op = vm_disk_changes.resize(session, principal, obj_id, disk_id, body)
            out = answer(session, row, op)
        return accepted(frontend, out)


def add_config_routes(router: APIRouter, answer: Answer, accepted: Accepted) -> None:
    """Add POST /vms/{id}/resize and POST /vms/{id}/conf (a VM that runs nowhere)."""

    @router.post(
        "/{obj_id}/resize",
        response_model=wire.VmActionAccepted,
        summary="New CPU, VCPU, memory (powered off, undeployed, pending or on hold)",
    )
    def vm_resize(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.VmResize
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row = vm_config.resize(session, principal, obj_id, body)
            out = answer(session, row, None)
        return accepted(frontend, out)

    @router.post(
        "/{obj_id}/conf",
        response_model=wire.VmActionAccepted,
        summary="New OS, FEATURES, INPUT, GRAPHICS, RAW, CPU_MODEL or CONTEXT sections",
    )
    def vm_update_conf(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.VmUpdateConf
    ) -> wire.VmActionAccepted:
        with frontend.store.write() as session:
            row = vm_config.update_conf(session, principal, obj_id, body)
            out = answer(session, row, None)
        return accepted(frontend, out)
