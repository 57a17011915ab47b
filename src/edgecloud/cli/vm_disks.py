"""`edgecloud vm disk-*`, `export`, `import`: a VM's disks, snapshots, save-as, bundles."""

from pathlib import Path
from typing import Annotated

import typer

from edgecloud.api.workload import DiskSnapshot, VmActionAccepted
from edgecloud.cli.nouns import ObjId, created
from edgecloud.cli.output import print_list, report
from edgecloud.cli.vm import VM, app

DiskId = Annotated[int, typer.Argument(metavar="DISK_ID", min=0, help="The disk's DISK_ID.")]
SnapName = Annotated[str, typer.Argument(metavar="NAME", help="Snapshot name.")]
COLUMNS = [
    ("NAME", lambda s: s.name),
    ("ID", lambda s: s.id),
    ("DATE", lambda s: s.date),
]


def _show(ctx: typer.Context, snapshots: list[DiskSnapshot]) -> None:
    state, _ = VM.of(ctx)
    print_list(state.output, snapshots, COLUMNS)


@app.command("disk-snapshot-list")
def snapshot_list(ctx: typer.Context, obj_id: ObjId, disk_id: DiskId) -> None:
    """List a disk's snapshots."""
    _, vms = VM.of(ctx)
    _show(ctx, vms.disk_snapshots(obj_id, disk_id))


@app.command("disk-snapshot-create")
def snapshot_create(ctx: typer.Context, obj_id: ObjId, disk_id: DiskId, name: SnapName) -> None:
    """Snapshot a disk (the VM running or powered off)."""
    _, vms = VM.of(ctx)
    _show(ctx, vms.disk_snapshot_create(obj_id, disk_id, name))


@app.command("disk-snapshot-revert")
def snapshot_revert(ctx: typer.Context, obj_id: ObjId, disk_id: DiskId, name: SnapName) -> None:
    """Go back to a snapshot (power the VM off first)."""
    _, vms = VM.of(ctx)
    _show(ctx, vms.disk_snapshot_revert(obj_id, disk_id, name))


@app.command("disk-snapshot-delete")
def snapshot_delete(ctx: typer.Context, obj_id: ObjId, disk_id: DiskId, name: SnapName) -> None:
    """Delete a snapshot."""
    _, vms = VM.of(ctx)
    _show(ctx, vms.disk_snapshot_delete(obj_id, disk_id, name))


@app.command("disk-saveas")
def saveas(
    ctx: typer.Context,
    obj_id: ObjId,
    disk_id: DiskId,
    name: Annotated[str, typer.Argument(metavar="IMAGE_NAME", help="Name of the new image.")],
    datastore: Annotated[int | None, typer.Option(min=0, help="Image datastore id.")] = None,
) -> None:
    """Copy a powered-off VM's disk into a new image."""
    state, vms = VM.of(ctx)
    created(state, "image", vms.disk_saveas(obj_id, disk_id, name, datastore_id=datastore))


@app.command("export")
def export(
    ctx: typer.Context,
    obj_id: ObjId,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Where the bundle goes.")],
) -> None:
    """Write a powered-off VM (template and disks) to a bundle file."""
    state, vms = VM.of(ctx)
    size = vms.export(obj_id, file)
    report(state.output, None, f"exported VM {obj_id} to {file} ({size} bytes)")


@app.command("import")
def import_bundle(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, help="A bundle file.")
    ],
    name: Annotated[str | None, typer.Option(help="Name of the new VM.")] = None,
    datastore: Annotated[int | None, typer.Option(min=0, help="Image datastore id.")] = None,
) -> None:
    """Make a VM (and images of its disks) from a bundle."""
    state, vms = VM.of(ctx)
    created(state, "VM", vms.import_bundle(file, name=name, datastore_id=datastore))


@app.command("disk-attach")
def disk_attach(
    ctx: typer.Context,
    obj_id: ObjId,
    image: Annotated[str | None, typer.Option(help="An image, by id or name.")] = None,
    volatile: Annotated[
        str | None, typer.Option("--type", help="A new volatile disk: fs or swap.")
    ] = None,
    size: Annotated[int | None, typer.Option(min=1, help="Size in MiB.")] = None,
    fs: Annotated[str | None, typer.Option(help="File system of an fs disk: raw or ext4.")] = None,
) -> None:
    """Attach a disk (hot-plugged into a running VM)."""
    state, vms = VM.of(ctx)
    body: dict[str, object] = {"size_mb": size, "type": volatile, "fs": fs}
    if image is not None:
        body["image_id" if image.isdigit() else "image"] = int(image) if image.isdigit() else image
    done = vms.disk_attach(obj_id, **{k: v for k, v in body.items() if v is not None})
    report(state.output, done, f"VM {obj_id}: disk attach " + _queued(done))


@app.command("disk-detach")
def disk_detach(ctx: typer.Context, obj_id: ObjId, disk_id: DiskId) -> None:
    """Detach a disk (a persistent one is copied back to its image)."""
    state, vms = VM.of(ctx)
    done = vms.disk_detach(obj_id, disk_id)
    report(state.output, done, f"VM {obj_id}: disk {disk_id} detach " + _queued(done))


@app.command("disk-resize")
def disk_resize(
    ctx: typer.Context,
    obj_id: ObjId,
    disk_id: DiskId,
    size: Annotated[int, typer.Argument(metavar="SIZE_MB", min=1, help="New size in MiB.")],
) -> None:
    """Grow a disk."""
    state, vms = VM.of(ctx)
    done = vms.disk_resize(obj_id, disk_id, size)
    report(state.output, done, f"VM {obj_id}: disk {disk_id} resize " + _queued(done))


def _queued(done: VmActionAccepted) -> str:
    return f"queued (operation {done.operation.id})" if done.operation else "recorded"
