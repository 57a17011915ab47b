"""A VM's disk snapshots from its page: take one (a form), revert to or delete one
(behind a confirmation page). The host does the work while the request waits."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import ObjId, ViewerDep, form_errors
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

DiskId = Annotated[int, Path(ge=0, le=255)]
SnapshotName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
SnapshotOp = Literal["revert", "delete"]
OPS = {
    "revert": (
        "Revert",
        "Go back to snapshot {name} of disk {disk}? What was written since is lost.",
    ),
    "delete": ("Delete", "Delete snapshot {name} of disk {disk}?"),
}
DONE_NOTICES = {
    "snapshot": "Snapshot taken.",
    "snapshot-revert": "Disk reverted to the snapshot.",
    "snapshot-delete": "Snapshot deleted.",
}


def routes(router: APIRouter) -> None:
    """Add the snapshot form and the confirmation pages."""
    base = "/vms/{vm_id}/disks/{disk_id}"

    @router.get(base + "/snapshot")
    async def snapshot_form(who: ViewerDep, vm_id: ObjId, disk_id: DiskId) -> Response:
        vm = await who.api.get(f"/vms/{vm_id}")
        return _snapshot_page(who, vm, disk_id, name="", error="", field_error="")

    @router.post(base + "/snapshot")
    async def take_snapshot(
        request: Request, who: ViewerDep, vm_id: ObjId, disk_id: DiskId
    ) -> Response:
        form = await checked_form(request, who)
        name = form.get("name", "").strip()
        try:
            await who.api.post(f"/vms/{vm_id}/disks/{disk_id}/snapshots", {"name": name})
        except ApiError as exc:
            vm = await who.api.get(f"/vms/{vm_id}")
            named, top = form_errors(exc, ("name",))
            return _snapshot_page(
                who,
                vm,
                disk_id,
                name=name,
                error=top,
                field_error=named.get("name", ""),
                status=exc.status,
            )
        return RedirectResponse(f"/vms/{vm_id}?done=snapshot", status_code=303)

    @router.get(base + "/snapshots/{name}/{op}")
    async def confirm(
        who: ViewerDep, vm_id: ObjId, disk_id: DiskId, name: SnapshotName, op: SnapshotOp
    ) -> Response:
        vm = await who.api.get(f"/vms/{vm_id}")
        return _confirm_page(who, vm, disk_id, name, op, error="")

    @router.post(base + "/snapshots/{name}/{op}")
    async def act(
        request: Request,
        who: ViewerDep,
        vm_id: ObjId,
        disk_id: DiskId,
        name: SnapshotName,
        op: SnapshotOp,
    ) -> Response:
        await checked_form(request, who)
        path = f"/vms/{vm_id}/disks/{disk_id}/snapshots/{name}"
        try:
            if op == "revert":
                await who.api.post(path + "/revert")
            else:
                await who.api.delete(path)
        except ApiError as exc:
            vm = await who.api.get(f"/vms/{vm_id}")
            return _confirm_page(who, vm, disk_id, name, op, error=exc.message, status=exc.status)
        return RedirectResponse(f"/vms/{vm_id}?done=snapshot-{op}", status_code=303)


def _snapshot_page(
    who: Viewer,
    vm: dict[str, object],
    disk_id: int,
    *,
    name: str,
    error: str,
    field_error: str,
    status: int = 200,
) -> Response:
    return page(
        who,
        "vm_snapshot.html",
        status=status,
        title=f"Snapshot of disk {disk_id}: {vm['name']}",
        vm=vm,
        disk_id=disk_id,
        name=name,
        error=error,
        field_error=field_error,
    )


def _confirm_page(
    who: Viewer,
    vm: dict[str, object],
    disk_id: int,
    name: str,
    op: str,
    *,
    error: str,
    status: int = 200,
) -> Response:
    label, question = OPS[op]
    return page(
        who,
        "confirm.html",
        status=status,
        title=f"{label} snapshot {name}: {vm['name']}",
        question=question.format(name=name, disk=disk_id) + f" (VM {vm['name']}, #{vm['id']})",
        action_url=f"/vms/{vm['id']}/disks/{disk_id}/snapshots/{name}/{op}",
        cancel_url=f"/vms/{vm['id']}",
        confirm_label=label,
        danger=True,
        error=error,
    )
