"""A VM's disks on its host: snapshots (create, revert, delete) and save-as a new image.

These run on the host while the API request waits (outside any transaction): the VM must
be RUNNING or POWEROFF on a host whose driver keeps disks there, and reverting needs it
powered off (as OpenNebula asks). A disk is addressed by its DISK_ID, its position among
the VM's DISKs; only disks made from datastore images live on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import LCM_STATE, VM_STATE
from edgecloud.drivers.base import DiskStorage, DriverError, HostRef, HostUnreachable
from edgecloud.drivers.hypervisor.disks import disks_of
from edgecloud.server.auth.access import Principal
from edgecloud.server.datastore.files import ImageFileError, Stored, qcow2_virtual_size
from edgecloud.server.datastore.importer import finish
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Host, Vm
from edgecloud.server.errors import Conflict, HostFailed, InvalidInput
from edgecloud.server.lifecycle.drivers import Drivers, host_ref
from edgecloud.server.services.images import Images
from edgecloud.server.services.objects import load

RUNNING = (VM_STATE["ACTIVE"], LCM_STATE["RUNNING"])
POWEROFF = (VM_STATE["POWEROFF"], 0)


@dataclass(frozen=True)
class DiskTarget:
    """Where a VM's disk lives: its host, the host's kind, the guest and the disk."""

    host: HostRef
    kind: str
    deploy_id: str
    disk_id: int
    powered_off: bool


def disk_target(
    session: Session, principal: Principal, vm_id: int, disk_id: int, *, op: str
) -> DiskTarget:
    """Check the VM and disk allow `op` now (MANAGE on the VM); return where it runs."""
    vm = load(session, principal, Vm, "VM", vm_id, right="MANAGE")
    disks = {d.disk_id: d for d in disks_of(vm.template)}
    disk = disks.get(disk_id)
    if disk is None:
        raise InvalidInput("disk_id", f"VM {vm_id} has no disk {disk_id}")
    if disk.mode not in ("overlay", "copy"):
        raise InvalidInput("disk_id", f"disk {disk_id} is not a datastore image on the host")
    if op != "saveas" and disk.mode == "copy" and disk.format != "qcow2":
        raise InvalidInput("disk_id", f"disk {disk_id} is {disk.format}: snapshots need qcow2")
    state = (vm.state, vm.lcm_state if vm.state == VM_STATE["ACTIVE"] else 0)
    allowed = (POWEROFF,) if op in ("revert", "saveas") else (RUNNING, POWEROFF)
    if state not in allowed:
        need = "powered off" if op in ("revert", "saveas") else "running or powered off"
        raise Conflict(f"VM {vm_id} must be {need} to {op} a disk", field="id")
    host = session.get(Host, vm.host_id) if vm.host_id is not None else None
    if host is None or not vm.deploy_id:
        raise Conflict(f"VM {vm_id} has no guest on a host", field="id")
    return DiskTarget(host_ref(host), host.hypervisor, vm.deploy_id, disk_id, state == POWEROFF)


def _driver(drivers: Drivers, target: DiskTarget) -> DiskStorage:
    driver = drivers.hypervisor(target.kind)
    if not isinstance(driver, DiskStorage):
        raise Conflict(f"{target.kind} hosts keep no disks", field="id")
    return driver


def snapshots(
    drivers: Drivers, target: DiskTarget, op: str, name: str = ""
) -> list[wire.DiskSnapshot]:
    """Run a snapshot operation on the host; return the disk's snapshots afterwards."""
    driver = _driver(drivers, target)
    try:
        found = driver.disk_snapshot(target.host, target.deploy_id, target.disk_id, op, name)
    except (HostUnreachable, DriverError) as exc:
        message = str(exc)
        if "no snapshot" in message or "missing" in message.lower():
            raise InvalidInput("name", message) from exc
        raise HostFailed(f"host {target.host.name}: {message}", field="id") from exc
    return [wire.DiskSnapshot.model_validate(_snapshot(s)) for s in found]


def _snapshot(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": str(raw.get("name", "")),
        "id": str(raw.get("id", "")),
        "date": float(raw.get("date", 0) or 0),
        "vm_state_size": int(raw.get("vm_state_size", 0) or 0),
    }


def begin_saveas(
    session: Session,
    principal: Principal,
    images: Images,
    vm_id: int,
    disk_id: int,
    body: wire.DiskSaveAs,
    home: Path,
) -> tuple[DiskTarget, int, Path]:
    """Register the new image (LOCKED) and return where its bytes go."""
    target = disk_target(session, principal, vm_id, disk_id, op="saveas")
    create = wire.ImageCreate(
        name=body.name,
        datastore_id=body.datastore_id if body.datastore_id is not None else 1,
        kind="OS" if disk_id == 0 else "DATABLOCK",
        upload=True,
    )
    origin = f"vm:{vm_id}:disk:{disk_id}"
    image_id, path = images.create_copied(session, principal, create, origin, home)
    return target, image_id, path


def saveas_to(drivers: Drivers, target: DiskTarget, path: Path) -> tuple[str, int]:
    """Copy the disk, flattened, to `path` on the front-end; return (checksum, bytes)."""
    driver = _driver(drivers, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return driver.disk_saveas(target.host, target.deploy_id, target.disk_id, path)
    except (HostUnreachable, DriverError) as exc:
        raise HostFailed(f"host {target.host.name}: {exc}", field="id") from exc


def saveas(store: Store, drivers: Drivers, target: DiskTarget, image_id: int, path: Path) -> None:
    """Copy the disk into the image's file; the image ends READY or ERROR with the reason."""
    try:
        checksum, size = saveas_to(drivers, target, path)
        with path.open("rb") as stream:
            virtual = qcow2_virtual_size(stream.read(64))
    except (HostFailed, ImageFileError, OSError) as exc:
        finish(store, image_id, None, f"save-as of disk {target.disk_id} failed: {exc}")
        if isinstance(exc, HostFailed):
            raise
        raise HostFailed(f"host {target.host.name}: {exc}", field="id") from exc
    stored = Stored(path, "qcow2", size, max(1, -(-virtual // 2**20)), checksum)
    finish(store, image_id, stored)
