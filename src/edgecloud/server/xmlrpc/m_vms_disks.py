"""one.vm.* on a VM's disks and NICs: attach, detach, diskresize, attachnic, detachnic,
disk snapshots, disksaveas; and resize / updateconf, which our services do not do.

Disk snapshots and save-as run on the VM's host while the call waits (as REST does).
OpenNebula numbers snapshots; ours are named: a snapshot's number is the id the host
gives it (its position in the disk's list where the host gives none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.db.models import Operation, Vm
from edgecloud.server.services import vm_config, vm_disk_changes, vm_disks, vm_nics
from edgecloud.server.services.images import Images
from edgecloud.server.xmlrpc.core import ACTION, Ctx, OneError, method
from edgecloud.server.xmlrpc.m_vms_base import attributes, changed, publish, vm_access, wire_body

images = Images()


def _vector(text: str, name: str, vm_id: int) -> Mapping[str, Any]:
    """The first `name` vector of a template parameter (or the template itself)."""
    attrs = attributes(text, name.lower())
    found = attrs.get(name, attrs)
    if isinstance(found, list):
        found = found[0] if found else {}
    if not isinstance(found, Mapping) or not found:
        raise OneError(ACTION, f"the template must hold a {name} vector", vm_id)
    return found


def _int(value: Any, what: str, vm_id: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise OneError(ACTION, f"{what} must be a whole number, got {value!r}", vm_id) from None


ChangeResult = tuple[Vm, Operation | None]


def _change(ctx: Ctx, vm_id: int, run: Callable[[Session], ChangeResult]) -> int:
    """Run a VM change `run(session) -> (row, operation)`; publish the VM; return its id."""
    with vm_access(ctx, vm_id), ctx.frontend.store.write() as session:
        row, _ = run(session)
        vm = changed(session, row)
    publish(ctx.frontend, vm)
    return vm_id


@method("one.vm.attach", int, str, kind="action")
def attach(ctx: Ctx, vm_id: int, template: str) -> int:
    """Attach a disk: DISK = [IMAGE_ID | IMAGE, SIZE] or a volatile [TYPE = fs|swap, SIZE, FS]."""
    disk = _vector(template, "DISK", vm_id)
    values: dict[str, Any] = {}
    if "IMAGE_ID" in disk:
        values["image_id"] = _int(disk["IMAGE_ID"], "IMAGE_ID", vm_id)
    elif "IMAGE" in disk:
        values["image"] = disk["IMAGE"]
    elif "TYPE" in disk:
        values["type"] = str(disk["TYPE"]).lower()
        if "FS" in disk:
            values["fs"] = str(disk["FS"]).lower()
    if "SIZE" in disk:
        values["size_mb"] = _int(disk["SIZE"], "SIZE", vm_id)
    body = wire_body(wire.DiskAttach, **values)

    def run(session: Session) -> ChangeResult:
        return vm_disk_changes.attach(session, ctx.principal, vm_id, body)

    return _change(ctx, vm_id, run)


@method("one.vm.detach", int, int, kind="action")
def detach(ctx: Ctx, vm_id: int, disk_id: int) -> int:
    """Detach a disk."""

    def run(session: Session) -> ChangeResult:
        return vm_disk_changes.detach(session, ctx.principal, vm_id, disk_id)

    return _change(ctx, vm_id, run)


@method("one.vm.diskresize", int, int, str, kind="action")
def diskresize(ctx: Ctx, vm_id: int, disk_id: int, size: str) -> int:
    """Grow a disk to `size` MiB."""
    body = wire_body(wire.DiskResize, size_mb=_int(size, "size", vm_id))

    def run(session: Session) -> ChangeResult:
        return vm_disk_changes.resize(session, ctx.principal, vm_id, disk_id, body)

    return _change(ctx, vm_id, run)


@method("one.vm.attachnic", int, str, kind="action")
def attachnic(ctx: Ctx, vm_id: int, template: str) -> int:
    """Attach a NIC: NIC = [NETWORK_ID | NETWORK, IP, MAC, SECURITY_GROUPS]."""
    nic = _vector(template, "NIC", vm_id)
    values: dict[str, Any] = {k.lower(): nic[k] for k in ("NETWORK", "IP", "MAC") if k in nic}
    if "NETWORK_ID" in nic:
        values["network_id"] = _int(nic["NETWORK_ID"], "NETWORK_ID", vm_id)
    groups = str(nic.get("SECURITY_GROUPS", ""))
    values["security_groups"] = [_int(g, "SECURITY_GROUPS", vm_id) for g in groups.split(",") if g]
    body = wire_body(wire.NicAttach, **values)

    def run(session: Session) -> ChangeResult:
        return vm_nics.attach(session, ctx.principal, vm_id, body)

    return _change(ctx, vm_id, run)


@method("one.vm.detachnic", int, int, kind="action")
def detachnic(ctx: Ctx, vm_id: int, nic_id: int) -> int:
    """Detach a NIC (its lease goes back)."""

    def run(session: Session) -> ChangeResult:
        return vm_nics.detach(session, ctx.principal, vm_id, nic_id)

    return _change(ctx, vm_id, run)


def _snapshots(
    ctx: Ctx, vm_id: int, disk_id: int, op: str, name: str = ""
) -> list[wire.DiskSnapshot]:
    with vm_access(ctx, vm_id):
        with ctx.frontend.store.read() as session:
            target = vm_disks.disk_target(session, ctx.principal, vm_id, disk_id, op=op)
        return vm_disks.snapshots(ctx.frontend.drivers, target, op, name)


def snapshot_number(snapshot: wire.DiskSnapshot, index: int) -> int:
    """OpenNebula's number of a snapshot: the host's id, else its position."""
    return int(snapshot.id) if snapshot.id.isdigit() else index


def _named(ctx: Ctx, vm_id: int, disk_id: int, snap_id: int) -> str:
    for index, snapshot in enumerate(_snapshots(ctx, vm_id, disk_id, "list")):
        if snapshot_number(snapshot, index) == snap_id:
            return str(snapshot.name)
    raise OneError(ACTION, f"disk {disk_id} of VM {vm_id} has no snapshot {snap_id}", vm_id)


@method("one.vm.disksnapshotcreate", int, int, str, kind="action")
def disksnapshotcreate(ctx: Ctx, vm_id: int, disk_id: int, name: str) -> int:
    """Snapshot a disk; return the snapshot's number."""
    body = wire_body(wire.DiskSnapshotCreate, name=name or "snapshot")
    found = _snapshots(ctx, vm_id, disk_id, "create", body.name)
    for index, snapshot in reversed(list(enumerate(found))):
        if snapshot.name == body.name:
            return snapshot_number(snapshot, index)
    raise OneError(ACTION, f"the host did not list snapshot {body.name} after taking it", vm_id)


@method("one.vm.disksnapshotrevert", int, int, int, kind="action")
def disksnapshotrevert(ctx: Ctx, vm_id: int, disk_id: int, snap_id: int) -> int:
    """Go back to a snapshot (the VM powered off)."""
    _snapshots(ctx, vm_id, disk_id, "revert", _named(ctx, vm_id, disk_id, snap_id))
    return vm_id


@method("one.vm.disksnapshotdelete", int, int, int, kind="action")
def disksnapshotdelete(ctx: Ctx, vm_id: int, disk_id: int, snap_id: int) -> int:
    """Delete a snapshot."""
    _snapshots(ctx, vm_id, disk_id, "delete", _named(ctx, vm_id, disk_id, snap_id))
    return vm_id


@method("one.vm.disksaveas", int, int, str, str, int, defaults=("", -1), kind="action")
def disksaveas(ctx: Ctx, vm_id: int, disk_id: int, name: str, kind: str, snap_id: int) -> int:
    """Copy a powered-off VM's disk into a new image (OS for disk 0, else DATABLOCK; `kind`
    is not used); return the image's id."""
    if snap_id != -1:
        raise OneError(ACTION, "saving a disk snapshot as an image is not supported", vm_id)
    body = wire_body(wire.DiskSaveAs, name=name)
    home = ctx.frontend.settings.home
    with vm_access(ctx, vm_id):
        with ctx.frontend.store.write() as session:
            target, image_id, path = vm_disks.begin_saveas(
                session, ctx.principal, images, vm_id, disk_id, body, home
            )
        vm_disks.saveas(ctx.frontend.store, ctx.frontend.drivers, target, image_id, path)
    return image_id


@method("one.vm.resize", int, str, bool, defaults=(True,), kind="action")
def resize(ctx: Ctx, vm_id: int, template: str, enforce: bool) -> int:
    """New CPU, VCPU, MEMORY for a VM that runs nowhere (its host's room checked unless an
    administrator says enforce = false)."""
    attrs = attributes(template, "template")
    values: dict[str, Any] = {"enforce": enforce}
    for key, field, kind in (
        ("CPU", "cpu", float),
        ("VCPU", "vcpu", int),
        ("MEMORY", "memory_mb", int),
    ):
        if key in attrs:
            try:
                values[field] = kind(str(attrs[key]))
            except ValueError:
                raise OneError(
                    ACTION, f"{key} must be a number, got {attrs[key]!r}", vm_id
                ) from None
    body = wire_body(wire.VmResize, **values)
    return _change(ctx, vm_id, lambda s: (vm_config.resize(s, ctx.principal, vm_id, body), None))


@method("one.vm.updateconf", int, str, int, defaults=(0,), kind="action")
def updateconf(ctx: Ctx, vm_id: int, template: str, append: int) -> int:
    """Replace (append = 1: merge into) the OS, FEATURES, INPUT, GRAPHICS, RAW, CPU_MODEL and
    CONTEXT sections of a VM that runs nowhere; they apply at its next boot."""
    body = wire_body(
        wire.VmUpdateConf, template=attributes(template, "template"), merge=bool(append)
    )
    return _change(
        ctx, vm_id, lambda s: (vm_config.update_conf(s, ctx.principal, vm_id, body), None)
    )
