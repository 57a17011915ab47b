"""Export a VM to a portable bundle, and import one (here, or on another front-end).

A bundle is an uncompressed tar: `manifest.json` first, then one flattened qcow2 file per
disk made from a datastore image. The manifest holds the VM's template with what only
makes sense where it ran taken out (leases, placement, image ids, host paths): a NIC
keeps the name of its network, the OS's kernel and initrd the names of their images, and
each disk its sha256. Importing makes one image per disk (checked against the sha256)
and a VM of the template; networks and boot files are found by name where it lands.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.drivers.hypervisor.disks import disks_of
from edgecloud.server.auth.access import Principal
from edgecloud.server.datastore.files import ImageFileError, store
from edgecloud.server.datastore.importer import finish
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Image, Vm
from edgecloud.server.errors import InvalidInput
from edgecloud.server.lifecycle.drivers import Drivers
from edgecloud.server.services import vm_disks
from edgecloud.server.services.images import Images
from edgecloud.server.services.objects import load

FORMAT = "edgecloud-bundle/1"
MANIFEST = "manifest.json"
MAX_MANIFEST = 1 << 20
# Template attributes that only meant something where the VM was.
LOCAL_ATTRIBUTES = {"SCHED_REQUIREMENTS", "SCHED_RANK", "VMID", "DEPLOY_ID", "TEMPLATE_ID"}
_FILE_REF = re.compile(r'^\$FILE\[\s*IMAGE(_ID)?\s*=\s*"?([^"\]]+)"?\s*\]$')


@dataclass(frozen=True)
class ExportPlan:
    """What an export copies: the VM's portable template and its disks on the host."""

    manifest: dict[str, Any]
    disks: list[vm_disks.DiskTarget]


def _portable_os(session: Session, os_: dict[str, Any]) -> dict[str, Any]:
    out = dict(os_)
    for key in ("KERNEL", "INITRD"):
        ref = out.get(f"{key}_DS")
        if ref is None:
            continue
        match = _FILE_REF.match(str(ref).strip())
        if match and match.group(1) and match.group(2).strip().isdigit():
            image = session.get(Image, int(match.group(2)))
            if image is not None:
                out[f"{key}_DS"] = f'$FILE[IMAGE="{image.name}"]'
        out.pop(key, None)  # the path on this front-end's hosts
    return out


def plan_export(session: Session, principal: Principal, vm_id: int) -> ExportPlan:
    """Check the VM can be exported now (powered off, MANAGE) and say what goes in."""
    vm = load(session, principal, Vm, "VM", vm_id, right="MANAGE")
    if vm.hypervisor == "lxc":
        raise InvalidInput("id", f"VM {vm_id} is a container: containers are not exported yet")
    template = {k: v for k, v in vm.template.items() if k not in LOCAL_ATTRIBUTES}
    disks: list[dict[str, Any]] = []
    targets: list[vm_disks.DiskTarget] = []
    raw_disks = template.get("DISK", [])
    for raw, disk in zip(raw_disks, disks_of(vm.template), strict=True):
        if disk.mode in ("overlay", "copy"):
            targets.append(
                vm_disks.disk_target(session, principal, vm_id, disk.disk_id, op="saveas")
            )
            disks.append(
                {
                    "disk_id": disk.disk_id,
                    "file": f"disk.{disk.disk_id}.qcow2",
                    "kind": str(raw.get("TYPE", "DATABLOCK")),
                    "persistent": disk.mode == "copy",
                }
            )
        elif disk.mode == "volatile":
            keep = {k: raw[k] for k in ("TYPE", "SIZE", "FS", "FORMAT") if k in raw}
            disks.append({"disk_id": disk.disk_id, "volatile": keep})
        else:
            raise InvalidInput(
                "id", f"disk {disk.disk_id} of VM {vm_id} is a path on the hosts: not portable"
            )
    template.pop("DISK", None)
    nics = [{"NETWORK": str(n.get("NETWORK", ""))} for n in template.pop("NIC", []) or []]
    if isinstance(template.get("OS"), dict):
        template["OS"] = _portable_os(session, template["OS"])
    manifest = {
        "format": FORMAT,
        "name": vm.name,
        "hypervisor": vm.hypervisor,
        "template": template,
        "nics": nics,
        "disks": disks,
    }
    return ExportPlan(manifest, targets)


def write_bundle(drivers: Drivers, plan: ExportPlan, path: Path) -> None:
    """Copy the VM's disks from its host and write the bundle to `path`."""
    work = path.with_name(path.name + ".disks")
    work.mkdir(parents=True, exist_ok=True)
    try:
        copied = [d for d in plan.manifest["disks"] if "file" in d]
        for target, entry in zip(plan.disks, copied, strict=True):
            disk_file = work / entry["file"]
            checksum, size = vm_disks.saveas_to(drivers, target, disk_file)
            entry["sha256"], entry["bytes"] = checksum, size
        data = json.dumps(plan.manifest, indent=2, sort_keys=True).encode()
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            for entry in plan.manifest["disks"]:
                if "file" in entry:
                    tar.add(work / entry["file"], arcname=entry["file"], recursive=False)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        for leftover in work.glob("*"):
            leftover.unlink()
        work.rmdir()


def read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """Return the bundle's manifest, checked for the fields an import reads."""
    try:
        member = tar.getmember(MANIFEST)
    except KeyError:
        raise InvalidInput("body", "not an edgecloud bundle: no manifest.json") from None
    stream = tar.extractfile(member)
    if stream is None or member.size > MAX_MANIFEST:
        raise InvalidInput("body", "the bundle's manifest.json is not a small regular file")
    try:
        manifest = json.loads(stream.read())
    except ValueError as exc:
        raise InvalidInput("body", f"the bundle's manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput("body", f"not an {FORMAT} bundle")
    if not isinstance(manifest.get("template"), dict) or not isinstance(
        manifest.get("disks"), list
    ):
        raise InvalidInput("body", "the manifest needs a template and a list of disks")
    return manifest


def import_disks(
    store_: Store,
    principal: Principal,
    images: Images,
    tar: tarfile.TarFile,
    manifest: dict[str, Any],
    *,
    name: str,
    datastore_id: int,
    home: Path,
) -> list[dict[str, Any]]:
    """Make one image per bundled disk (checked against its sha256); return the VM's DISKs."""
    made: list[dict[str, Any]] = []
    for entry in manifest["disks"]:
        if not isinstance(entry, dict):
            raise InvalidInput("body", "a disk of the manifest is not an object")
        if "volatile" in entry:
            made.append(dict(entry["volatile"]))
            continue
        member = _member(tar, entry)
        image_id, target = _new_image(store_, principal, images, entry, name, datastore_id, home)
        stream = tar.extractfile(member)
        assert stream is not None
        try:
            stored = store(_chunks(stream), target, declared="qcow2", expected=entry["sha256"])
        except ImageFileError as exc:
            finish(store_, image_id, None, f"from the bundle: {exc}")
            raise InvalidInput("body", f"disk {entry.get('disk_id')}: {exc}") from exc
        finish(store_, image_id, stored)
        made.append({"IMAGE_ID": str(image_id)})
    return made


def _member(tar: tarfile.TarFile, entry: dict[str, Any]) -> tarfile.TarInfo:
    file = str(entry.get("file", ""))
    if not re.fullmatch(r"disk\.[0-9]{1,3}\.qcow2", file) or "sha256" not in entry:
        raise InvalidInput("body", f"a disk of the manifest names no valid file: {file[:40]!r}")
    try:
        member = tar.getmember(file)
    except KeyError:
        raise InvalidInput("body", f"the bundle has no {file}") from None
    if not member.isfile():
        raise InvalidInput("body", f"{file} in the bundle is not a regular file")
    return member


def _new_image(
    store_: Store,
    principal: Principal,
    images: Images,
    entry: dict[str, Any],
    name: str,
    datastore_id: int,
    home: Path,
) -> tuple[int, Path]:
    kind = str(entry.get("kind", "DATABLOCK"))
    if kind not in ("OS", "DATABLOCK", "CDROM"):
        kind = "DATABLOCK"
    with store_.write() as session:
        create = wire.ImageCreate(
            name=f"{name}-disk{int(entry.get('disk_id', 0))}",
            datastore_id=datastore_id,
            kind=kind,
            persistent=bool(entry.get("persistent")),
            upload=True,
        )
        return images.create_copied(session, principal, create, "vm:bundle", home)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(1 << 20):
        yield chunk


def vm_body(manifest: dict[str, Any], disks: list[dict[str, Any]], name: str) -> wire.VmCreate:
    """Return the VM to create from a manifest and the disks made for it."""
    template = dict(manifest["template"])
    template["DISK"] = disks
    nics = [n for n in manifest.get("nics", []) if isinstance(n, dict) and n.get("NETWORK")]
    if nics:
        template["NIC"] = [{"NETWORK": str(n["NETWORK"])} for n in nics]
    return wire.VmCreate(name=name, template=template)


def unused_name(session: Session, principal: Principal, wanted: str) -> str:
    """Return `wanted`, or it with a number, so the imported images' names are free."""
    taken = set(
        session.scalars(
            select(Image.name).where(
                Image.owner_id == principal.user_id, Image.name.like(f"{wanted}%")
            )
        )
    )
    if not any(t.startswith(f"{wanted}-disk") for t in taken):
        return wanted
    number = 2
    while any(t.startswith(f"{wanted}-{number}-disk") for t in taken):
        number += 1
    return f"{wanted}-{number}"
