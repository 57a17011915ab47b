"""Routes of a VM's disks: snapshots and save-as (the host works while the request waits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from edgecloud.api import workload as wire
from edgecloud.server.rest.crud import IdPath
from edgecloud.server.rest.deps import FrontEndDep, PrincipalDep
from edgecloud.server.services import vm_disks
from edgecloud.server.services.images import Images

DiskIdPath = Annotated[int, Path(ge=0, le=255)]
SnapshotPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Snapshots = list[wire.DiskSnapshot]


def add_disk_routes(router: APIRouter, images: Images) -> None:
    """Add /vms/{id}/disks/{disk_id}/... to the VMs router."""
    base = "/{obj_id}/disks/{disk_id}"

    def run(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        vm_id: int,
        disk_id: int,
        op: str,
        name: str = "",
    ) -> Snapshots:
        with frontend.store.read() as session:
            target = vm_disks.disk_target(session, principal, vm_id, disk_id, op=op)
        return vm_disks.snapshots(frontend.drivers, target, op, name)

    @router.get(f"{base}/snapshots", response_model=Snapshots, summary="A disk's snapshots")
    def list_snapshots(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, disk_id: DiskIdPath
    ) -> Snapshots:
        return run(frontend, principal, obj_id, disk_id, "list")

    @router.post(
        f"{base}/snapshots", response_model=Snapshots, status_code=201, summary="Snapshot a disk"
    )
    def create_snapshot(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        disk_id: DiskIdPath,
        body: wire.DiskSnapshotCreate,
    ) -> Snapshots:
        return run(frontend, principal, obj_id, disk_id, "create", body.name)

    @router.post(
        f"{base}/snapshots/{{name}}/revert",
        response_model=Snapshots,
        summary="Go back to a snapshot (the VM powered off)",
    )
    def revert_snapshot(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        disk_id: DiskIdPath,
        name: SnapshotPath,
    ) -> Snapshots:
        return run(frontend, principal, obj_id, disk_id, "revert", name)

    @router.delete(
        f"{base}/snapshots/{{name}}", response_model=Snapshots, summary="Delete a snapshot"
    )
    def delete_snapshot(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        disk_id: DiskIdPath,
        name: SnapshotPath,
    ) -> Snapshots:
        return run(frontend, principal, obj_id, disk_id, "delete", name)

    @router.post(
        f"{base}/saveas",
        response_model=wire.Image,
        status_code=201,
        summary="Copy a disk into a new image (the VM powered off)",
    )
    def saveas(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        disk_id: DiskIdPath,
        body: wire.DiskSaveAs,
    ) -> wire.Image:
        home = frontend.settings.home
        with frontend.store.write() as session:
            target, image_id, path = vm_disks.begin_saveas(
                session, principal, images, obj_id, disk_id, body, home
            )
        vm_disks.saveas(frontend.store, frontend.drivers, target, image_id, path)
        with frontend.store.read() as session:
            return images.get(session, principal, image_id)
