"""Disks attached to, detached from and grown on a VM (one.vm.attach / detach / diskresize).

A change is recorded in the VM's template at once (an attached image is taken: USED). On
a RUNNING kvm VM the disk is then hot-plugged (LCM HOTPLUG) or grown live (DISK_RESIZE);
on a POWEROFF VM its file is made, removed or grown on the host (HOTPLUG_PROLOG_POWEROFF,
HOTPLUG_EPILOG_POWEROFF, DISK_RESIZE_POWEROFF); a VM on no host just has its template
changed. A failed attach takes the disk out again. A disk keeps its DISK_ID for life: the
ids of the VM's disks are stamped into the template before the first change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import LCM_STATE as L
from edgecloud.api.states import state_label
from edgecloud.drivers.hypervisor.disks import disks_of
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Image, Operation, Vm, now
from edgecloud.server.errors import Conflict, InvalidInput, NotFound
from edgecloud.server.lifecycle import machine
from edgecloud.server.lifecycle.machine import Plan, Step
from edgecloud.server.services import operations
from edgecloud.server.services.images import give_back
from edgecloud.server.services.objects import load
from edgecloud.server.services.vm_lifecycle import history, start_plan

RECORD_ONLY = frozenset({machine.PENDING, machine.HOLD, machine.UNDEPLOYED})
MAX_DISK_ID = 255


def stamped_disks(row: Vm) -> list[dict[str, Any]]:
    """Return a copy of the VM's DISKs, each with its DISK_ID written in."""
    raw = [dict(d) for d in row.template.get("DISK", []) or []]
    for disk, found in zip(raw, disks_of(row.template), strict=True):
        disk["DISK_ID"] = str(found.disk_id)
    return raw


def _find(row: Vm, disk_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    disks = stamped_disks(row)
    for disk in disks:
        if disk["DISK_ID"] == str(disk_id):
            return disks, disk
    raise NotFound(f"VM {row.id} has no disk {disk_id}", field="disk_id")


def _changeable(session: Session, row: Vm, verb: str) -> tuple[int, int]:
    current = (row.state, row.lcm_state)
    if row.hypervisor == "lxc":
        raise Conflict(f"VM {row.id} is a container: its disks cannot be {verb} yet", field="id")
    if current not in (machine.RUNNING, machine.POWEROFF) and current not in RECORD_ONLY:
        raise Conflict(
            f"VM {row.id} is {state_label(*current)}: a disk can be {verb} when it is "
            "RUNNING, POWEROFF, UNDEPLOYED, PENDING or HOLD",
            field="id",
        )
    if current == machine.RUNNING and row.hypervisor == "microvm":
        raise Conflict(f"VM {row.id} is a microvm: power it off to change its disks", field="id")
    running = operations.active_for(session, "VM", row.id)
    if running is not None:
        raise Conflict(
            f"VM {row.id} has operation {running.id} ({running.kind}) in progress", field="id"
        )
    return current


def _new_disk(session: Session, principal: Principal, body: wire.DiskAttach) -> dict[str, Any]:
    from edgecloud.server.services.vms import resolve_disks  # vms imports vm_lifecycle

    named = [f for f in ("image_id", "image", "type") if getattr(body, f) is not None]
    if len(named) != 1:
        raise InvalidInput("image_id", "give one of image_id, image (a name) or type")
    if body.type is not None:
        if body.size_mb is None:
            raise InvalidInput("size_mb", "a volatile disk needs its size_mb")
        disk: dict[str, Any] = {"TYPE": body.type, "SIZE": str(body.size_mb)}
        if body.type == "fs" and body.fs:
            disk["FS"] = body.fs
        return disk
    disk = {"IMAGE_ID": str(body.image_id)} if body.image_id is not None else {"IMAGE": body.image}
    if body.size_mb is not None:
        disk["SIZE"] = str(body.size_mb)
    attrs = {"DISK": [disk]}
    resolve_disks(session, principal, attrs, field_prefix="")
    return dict(attrs["DISK"][0])


def attach(
    session: Session, principal: Principal, vm_id: int, body: wire.DiskAttach
) -> tuple[Vm, Operation | None]:
    """Record a disk; make (and hot-plug) it on the host when the VM is on one."""
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    current = _changeable(session, row, "attached")
    disks = stamped_disks(row)
    disk_id = max((int(d["DISK_ID"]) for d in disks), default=-1) + 1
    if disk_id > MAX_DISK_ID:
        raise Conflict(f"VM {row.id} has disk ids up to {MAX_DISK_ID} already", field="id")
    disk = _new_disk(session, principal, body)
    disk["DISK_ID"] = str(disk_id)
    row.template = {**row.template, "DISK": [*disks, disk]}
    row.updated_at = now()
    if current in RECORD_ONLY:
        history(session, row, "disk-attach", principal.user_id, f"disk {disk_id}")
        return row, None
    lcm = "HOTPLUG" if current == machine.RUNNING else "HOTPLUG_PROLOG_POWEROFF"
    plan = Plan((Step("disk_attach", L[lcm], current),), current)
    return row, start_plan(
        session, row, "attach_disk", plan, {"disk_id": disk_id}, principal.user_id
    )


def detach(
    session: Session, principal: Principal, vm_id: int, disk_id: int
) -> tuple[Vm, Operation | None]:
    """Take a disk off the VM (unplugged, and its file removed, on its host)."""
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    _, disk = _find(row, disk_id)
    current = _changeable(session, row, "detached")
    persistent = str(disk.get("PERSISTENT", "NO")).upper() == "YES"
    if current == machine.RUNNING and persistent:
        raise Conflict(
            f"disk {disk_id} is a persistent image: power the VM off to detach it (it is"
            " copied back to its image then)",
            field="disk_id",
        )
    if current in RECORD_ONLY:
        drop_disk(session, row, disk_id)
        row.updated_at = now()
        history(session, row, "disk-detach", principal.user_id, f"disk {disk_id}")
        return row, None
    lcm = "HOTPLUG" if current == machine.RUNNING else "HOTPLUG_EPILOG_POWEROFF"
    plan = Plan((Step("disk_detach", L[lcm], current),), current)
    return row, start_plan(
        session, row, "detach_disk", plan, {"disk_id": disk_id}, principal.user_id
    )


def resize(
    session: Session, principal: Principal, vm_id: int, disk_id: int, body: wire.DiskResize
) -> tuple[Vm, Operation | None]:
    """Grow a disk (live on a RUNNING kvm VM)."""
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    disks, disk = _find(row, disk_id)
    current = _changeable(session, row, "resized")
    size = int(float(disk.get("SIZE", 0) or 0))
    if body.size_mb <= size:
        raise InvalidInput("size_mb", f"disk {disk_id} is {size} MiB: a disk only grows")
    if current in RECORD_ONLY:
        disk["SIZE"] = str(body.size_mb)
        row.template = {**row.template, "DISK": disks}
        history(session, row, "disk-resize", principal.user_id, f"disk {disk_id}")
        return row, None
    lcm = "DISK_RESIZE" if current == machine.RUNNING else "DISK_RESIZE_POWEROFF"
    plan = Plan((Step("disk_resize", L[lcm], current),), current)
    params: dict[str, object] = {"disk_id": disk_id, "size_mb": body.size_mb}
    return row, start_plan(session, row, "resize_disk", plan, params, principal.user_id)


def drop_disk(session: Session, row: Vm, disk_id: object) -> None:
    """Take a disk out of the VM's template and give its image back."""
    disks = stamped_disks(row)
    gone = [d for d in disks if d["DISK_ID"] == str(disk_id)]
    if not gone:
        return
    row.template = {**row.template, "DISK": [d for d in disks if d not in gone]}
    for disk in gone:
        image = session.get(Image, int(disk["IMAGE_ID"])) if "IMAGE_ID" in disk else None
        if image is not None:
            give_back(image)


def settle(session: Session, row: Vm, action: str, params: dict[str, Any], *, done: bool) -> None:
    """Apply a finished disk operation to the template (or undo a failed attach's record)."""
    disk_id = params.get("disk_id")
    if (action == "disk_attach" and not done) or (action == "disk_detach" and done):
        drop_disk(session, row, disk_id)
    elif action == "disk_resize" and done:
        disks = stamped_disks(row)
        for disk in disks:
            if disk["DISK_ID"] == str(disk_id):
                disk["SIZE"] = str(params.get("size_mb"))
        row.template = {**row.template, "DISK": disks}
