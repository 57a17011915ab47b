"""IMAGE and VMTEMPLATE documents (image.xsd, vmtemplate.xsd), and what the image and
template methods share: reading a template parameter, building wire bodies, loading an
object with OpenNebula's AUTHORIZATION for one that exists but is not the caller's,
and the 9-int chmod."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from typing import cast as typed

from sqlalchemy import Row, Select, String, cast, or_, select
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire_types
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Datastore, Group, Image, Owned, User, Vm, VmTemplate
from edgecloud.server.errors import Conflict, NotFound
from edgecloud.server.services import objects
from edgecloud.server.services.images import LOCKED, USABLE, Images
from edgecloud.server.xmlrpc.core import AUTHORIZATION, XML_RPC_API, OneError, wire_body
from edgecloud.server.xmlrpc.xml import Element, attributes, ids, permissions, text
from edgecloud.server.xmlrpc.xml import template as template_el

IMAGE_TYPES = {"OS": 0, "CDROM": 1, "DATABLOCK": 2, "KERNEL": 3, "RAMDISK": 4, "CONTEXT": 5}
DONE = 6  # a VM in DONE gave its images back
MAX_VM_PATTERNS = 64  # in-use images looked up one by one; beyond, any VM with an image
IMAGES = Images()
M = TypeVar("M", bound=Owned)

# Columns, not ORM objects (a pool of thousands is built the faster for it), typed
# Select[Any]: what PoolFilter.apply takes.
IMAGE_SELECT: Select[Any] = typed(
    Select[Any],
    select(
        Image.id,
        Image.owner_id,
        Image.group_id,
        Image.name,
        Image.perms,
        Image.kind,
        Image.persistent,
        Image.created_at,
        Image.source,
        Image.path,
        Image.origin,
        Image.format,
        Image.template,
        Image.size_mb,
        Image.state,
        Image.running_vms,
        Image.datastore_id,
        Image.last_error,
        User.name.label("uname"),
        Group.name.label("gname"),
        Datastore.name.label("datastore"),
    )
    .join(User, User.id == Image.owner_id)
    .join(Group, Group.id == Image.group_id)
    .join(Datastore, Datastore.id == Image.datastore_id),
)
TEMPLATE_SELECT: Select[Any] = typed(
    Select[Any],
    select(
        VmTemplate.id,
        VmTemplate.owner_id,
        VmTemplate.group_id,
        VmTemplate.name,
        VmTemplate.perms,
        VmTemplate.created_at,
        VmTemplate.template,
        User.name.label("uname"),
        Group.name.label("gname"),
    )
    .join(User, User.id == VmTemplate.owner_id)
    .join(Group, Group.id == VmTemplate.group_id),
)


# --- shared by the methods -------------------------------------------------------------


def read_template(value: str, *, field: str = "template") -> dict[str, Any]:
    """A template parameter (OpenNebula syntax, or XML as pyone sends dicts) as attributes."""
    return attributes(value, field=field)


def load(
    session: Session, principal: Principal, model: type[M], kind: str, obj_id: int, right: str
) -> M:
    """The row, if the caller holds `right`; NO_EXISTS for none, AUTHORIZATION for
    another's (OpenNebula tells them apart; the REST API answers 404 to both)."""
    try:
        return objects.load(session, principal, model, kind, obj_id, right=right)
    except NotFound:
        if session.get(model, obj_id) is None:
            raise
        raise OneError(
            AUTHORIZATION,
            f"User [{principal.user_id}] : Not authorized to perform {right} {kind} [{obj_id}].",
            obj_id,
        ) from None


def chmod_bits(current: int, bits: Sequence[int]) -> str:
    """The permissions after OpenNebula's chmod (owner u/m/a, group u/m/a, other u/m/a;
    -1 keeps a bit), as our octal text."""
    perms = current
    for index, bit in enumerate(bits):
        if bit not in (-1, 0, 1):
            raise OneError(XML_RPC_API, f"permission bit {index + 1} must be -1, 0 or 1")
        mask = 1 << (8 - index)
        if bit == 1:
            perms |= mask
        elif bit == 0:
            perms &= ~mask
    return f"{perms:03o}"


def optional_id(value: int) -> int | None:
    """-1 (OpenNebula's "unchanged" / "the same") as None."""
    return None if value == -1 else value


def clone_image(session: Session, principal: Principal, image_id: int, name: str, ds: int) -> int:
    """Copy an image (datastore -1: the same): its bytes, the copy LOCKED until they are
    copied; an empty DATABLOCK (no bytes) as a new empty one of its size, READY at once."""
    body = wire_body(wire_types.ImageClone, name=name, datastore_id=optional_id(ds))
    source = load(session, principal, Image, "IMAGE", image_id, "USE")
    if source.source or source.path or source.origin or source.kind != "DATABLOCK":
        return IMAGES.clone(session, principal, image_id, body).id
    if source.state not in USABLE:
        state = wire_types.IMAGE_STATES.get(source.state, str(source.state))
        raise Conflict(f"image {image_id} is {state}: it cannot be copied now", field="id")
    create = wire_body(
        wire_types.ImageCreate,
        name=body.name,
        datastore_id=source.datastore_id if body.datastore_id is None else body.datastore_id,
        kind="DATABLOCK",
        size_mb=source.size_mb,
        format=source.format,
        template=dict(source.template),
    )
    return IMAGES.create(session, principal, create).id


# --- images ---------------------------------------------------------------------------


def image_documents(session: Session, stmt: Select[Any]) -> list[Element]:
    """The IMAGE elements of the rows `stmt` (an IMAGE_SELECT) finds: three queries in all."""
    rows = session.execute(stmt).all()
    vms = vms_of(session, [row.id for row in rows if row.running_vms > 0])
    clones = clones_of(session)
    return [image_element(row, vms.get(row.id, []), clones.get(row.id, [])) for row in rows]


def vms_of(session: Session, image_ids: Iterable[int]) -> dict[int, list[int]]:
    """The VMs (not DONE) whose disks use each of the images."""
    wanted = set(image_ids)
    if not wanted:
        return {}
    stored = cast(Vm.template, String)
    if len(wanted) <= MAX_VM_PATTERNS:
        match = or_(*(stored.like(f'%"IMAGE_ID": "{i}"%') for i in sorted(wanted)))
    else:
        match = stored.like('%"IMAGE_ID": %')
    stmt = select(Vm.id, Vm.template).where(Vm.state != DONE, match).order_by(Vm.id)
    found: dict[int, list[int]] = {}
    for vm_id, attrs in session.execute(stmt):
        disks = attrs.get("DISK", [])
        for disk in [disks] if isinstance(disks, dict) else disks:
            image_id = str(disk.get("IMAGE_ID", "")) if isinstance(disk, dict) else ""
            if image_id.isdigit() and int(image_id) in wanted:
                users = found.setdefault(int(image_id), [])
                if not users or users[-1] != vm_id:
                    users.append(vm_id)
    return found


def clones_of(session: Session) -> dict[int, list[int]]:
    """The images being copied from each image (LOCKED, origin image:<id>)."""
    stmt = select(Image.id, Image.origin).where(Image.state == LOCKED, Image.origin.like("image:%"))
    found: dict[int, list[int]] = {}
    for image_id, origin in session.execute(stmt.order_by(Image.id)):
        source = origin.partition(":")[2]
        if source.isdigit():
            found.setdefault(int(source), []).append(image_id)
    return found


def _put(parent: Element, pairs: Iterable[tuple[str, object]]) -> Element:
    """Append text elements; numbers as they are (only strings need xml.text's cleaning)."""
    for tag, value in pairs:
        child = ET.SubElement(parent, tag)
        child.text = str(int(value)) if isinstance(value, int) else text(value)
    return parent


def given_path(image: Row[Any]) -> str:
    """PATH as OpenNebula keeps it: where the bytes were registered from."""
    if image.path:
        return str(image.path)
    kind, _, rest = str(image.origin).partition(":")
    if kind == "file":
        return rest
    return str(image.origin) if kind in ("http", "https") else ""


def cloning_id(image: Row[Any]) -> int:
    """The image a LOCKED clone is being copied from, else -1."""
    kind, _, rest = str(image.origin).partition(":")
    return int(rest) if image.state == LOCKED and kind == "image" and rest.isdigit() else -1


def image_element(image: Row[Any], vms: Sequence[int], clones: Sequence[int]) -> Element:
    """One IMAGE (a row of IMAGE_SELECT), its elements in image.xsd's order."""
    node = _put(
        ET.Element("IMAGE"),
        [
            ("ID", image.id),
            ("UID", image.owner_id),
            ("GID", image.group_id),
            ("UNAME", image.uname),
            ("GNAME", image.gname),
            ("NAME", image.name),
        ],
    )
    node.append(permissions(image.perms))
    attrs = dict(image.template)
    if image.last_error:
        attrs["ERROR"] = image.last_error
    fs = attrs.get("FS", "")
    _put(
        node,
        [
            ("TYPE", IMAGE_TYPES.get(image.kind, 0)),
            ("DISK_TYPE", 0),  # FILE
            ("PERSISTENT", image.persistent),
            ("REGTIME", image.created_at),
            ("MODTIME", image.created_at),
            ("SOURCE", image.source or image.path),
            ("PATH", given_path(image)),
            ("FORMAT", image.format),
            ("FS", fs if isinstance(fs, str) else ""),
            ("SIZE", image.size_mb),
            ("STATE", image.state),
            ("PREV_STATE", image.state),
            ("RUNNING_VMS", image.running_vms),
            ("CLONING_OPS", len(clones)),
            ("CLONING_ID", cloning_id(image)),
            ("TARGET_SNAPSHOT", -1),
            ("DATASTORE_ID", image.datastore_id),
            ("DATASTORE", image.datastore),
        ],
    )
    node.extend([ids("VMS", vms), ids("CLONES", clones), ids("APP_CLONES", [])])
    node.append(template_el("TEMPLATE", attrs))
    snapshots = _put(
        ET.Element("SNAPSHOTS"),
        [("ALLOW_ORPHANS", "NO"), ("CURRENT_BASE", -1), ("NEXT_SNAPSHOT", 0)],
    )
    node.extend([snapshots, ET.Element("BACKUP_INCREMENTS")])
    return node


# --- VM templates -----------------------------------------------------------------------


def template_documents(session: Session, stmt: Select[Any]) -> list[Element]:
    """The VMTEMPLATE elements of the rows `stmt` (a TEMPLATE_SELECT) finds: one query."""
    return [template_element(row) for row in session.execute(stmt)]


def template_element(row: Row[Any]) -> Element:
    """One VMTEMPLATE (a row of TEMPLATE_SELECT), its elements in vmtemplate.xsd's order."""
    node = _put(
        ET.Element("VMTEMPLATE"),
        [
            ("ID", row.id),
            ("UID", row.owner_id),
            ("GID", row.group_id),
            ("UNAME", row.uname),
            ("GNAME", row.gname),
            ("NAME", row.name),
        ],
    )
    node.append(permissions(row.perms))
    _put(node, [("REGTIME", row.created_at)])
    node.append(template_el("TEMPLATE", row.template))
    return node
