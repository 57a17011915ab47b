"""one.template.* and one.templatepool.info, onto the VmTemplates and Vms services.

A template's images (for delete with images, recursive clone and chmod) are its DISKs'
IMAGE_ID, or IMAGE by name among the images the caller may use.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire_types
from edgecloud.api.common import Chmod, Chown
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Image, VmTemplate
from edgecloud.server.services.images import Images
from edgecloud.server.services.vm_templates import VmTemplates
from edgecloud.server.services.vms import Vms
from edgecloud.server.xmlrpc.core import ACTION, Ctx, OneError, method, wire_body
from edgecloud.server.xmlrpc.m_images_render import (
    TEMPLATE_SELECT,
    chmod_bits,
    clone_image,
    load,
    optional_id,
    read_template,
    template_documents,
)
from edgecloud.server.xmlrpc.pools import PoolFilter
from edgecloud.server.xmlrpc.xml import dumps, pool

TEMPLATES, IMAGES, VMS = VmTemplates(), Images(), Vms()
KIND = "TEMPLATE"


def _disks(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    disks = attrs.get("DISK", [])
    return [d for d in ([disks] if isinstance(disks, dict) else disks) if isinstance(d, dict)]


def template_images(
    session: Session, principal: Principal, row: VmTemplate, right: str
) -> list[Image | None]:
    """The image of each DISK (None for a volatile one), the caller holding `right` on it."""
    found: list[Image | None] = []
    for disk in _disks(row.template):
        image_id = str(disk.get("IMAGE_ID", "")).strip()
        if image_id.isdigit():
            found.append(load(session, principal, Image, "IMAGE", int(image_id), right))
        elif isinstance(disk.get("IMAGE"), str):
            stmt = select(Image.id).where(Image.name == disk["IMAGE"], principal.visible("IMAGE"))
            named = session.scalars(stmt.order_by(Image.id).limit(1)).first()
            image = (
                None if named is None else load(session, principal, Image, "IMAGE", named, right)
            )
            found.append(image)
        else:
            found.append(None)
    return found


@method("one.template.allocate", str, kind="allocate")
def template_allocate(ctx: Ctx, text: str) -> int:
    """Store a VM template (its NAME names it)."""
    body = wire_body(wire_types.VmTemplateCreate, template=read_template(text))
    with ctx.frontend.store.write() as session:
        return TEMPLATES.create(session, ctx.principal, body).id


@method("one.template.info", int, bool, bool, defaults=(False, False))
def template_info(ctx: Ctx, template_id: int, extended: bool, decrypt: bool) -> str:
    """The VMTEMPLATE document."""
    with ctx.frontend.store.read() as session:
        load(session, ctx.principal, VmTemplate, KIND, template_id, "USE")
        stmt = TEMPLATE_SELECT.where(VmTemplate.id == template_id)
        return dumps(template_documents(session, stmt)[0])


@method("one.templatepool.info", int, int, int)
def templatepool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The VMTEMPLATE_POOL document: one query."""
    stmt = PoolFilter(flag, start, end).apply(TEMPLATE_SELECT, KIND, ctx.principal)
    with ctx.frontend.store.read() as session:
        return pool("VMTEMPLATE_POOL", template_documents(session, stmt))


@method("one.template.update", int, str, int, defaults=(0,), kind="action")
def template_update(ctx: Ctx, template_id: int, text: str, append: int) -> int:
    """Replace the template's attributes (append=1: merge them)."""
    body = wire_body(wire_types.VmTemplateUpdate, template=read_template(text), merge=bool(append))
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, VmTemplate, KIND, template_id, "MANAGE")
        TEMPLATES.update(session, ctx.principal, template_id, body)
    return template_id


@method("one.template.rename", int, str, kind="action")
def template_rename(ctx: Ctx, template_id: int, name: str) -> int:
    """Rename a template (names are unique per owner)."""
    body = wire_body(wire_types.VmTemplateUpdate, name=name)
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, VmTemplate, KIND, template_id, "MANAGE")
        TEMPLATES.update(session, ctx.principal, template_id, body)
    return template_id


@method("one.template.delete", int, bool, defaults=(False,), kind="action")
def template_delete(ctx: Ctx, template_id: int, delete_images: bool) -> int:
    """Delete a template, and with delete_images its DISKs' images (all or nothing)."""
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, VmTemplate, KIND, template_id, "MANAGE")
        images = template_images(session, ctx.principal, row, "MANAGE") if delete_images else []
        TEMPLATES.delete(session, ctx.principal, template_id)
        for image_id in dict.fromkeys(i.id for i in images if i is not None):
            IMAGES.delete(session, ctx.principal, image_id)
    return template_id


@method("one.template.chmod", *(int,) * 10, bool, defaults=(False,), kind="action")
def template_chmod(ctx: Ctx, template_id: int, *rest: Any) -> int:
    """Change permission bits (-1 keeps one); recursive: its images' too."""
    bits, recursive = rest[:9], bool(rest[9])
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, VmTemplate, KIND, template_id, "MANAGE")
        body = Chmod(permissions=chmod_bits(row.perms, bits))
        TEMPLATES.chmod(session, ctx.principal, template_id, body)
        if recursive:
            images = template_images(session, ctx.principal, row, "MANAGE")
            for image in dict.fromkeys(i for i in images if i is not None):
                change = Chmod(permissions=chmod_bits(image.perms, bits))
                IMAGES.chmod(session, ctx.principal, image.id, change)
    return template_id


@method("one.template.chown", int, int, int, kind="action")
def template_chown(ctx: Ctx, template_id: int, uid: int, gid: int) -> int:
    """Change owner and/or group (-1 keeps one)."""
    body = wire_body(Chown, owner_id=optional_id(uid), group_id=optional_id(gid))
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, VmTemplate, KIND, template_id, "MANAGE")
        TEMPLATES.chown(session, ctx.principal, template_id, body)
    return template_id


@method("one.template.clone", int, str, bool, defaults=(False,), kind="allocate")
def template_clone(ctx: Ctx, template_id: int, name: str, recursive: bool) -> int:
    """Copy a template; recursive: copy its images too (named <name>-disk-<n>, LOCKED until
    their bytes are copied) and point the copy's DISKs at them."""
    wire_body(wire_types.ImageClone, name=name)  # the name's checks, before anything is written
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, VmTemplate, KIND, template_id, "USE")
        attrs = copy.deepcopy(dict(row.template))
        if recursive:
            images = template_images(session, ctx.principal, row, "USE")
            for index, (disk, image) in enumerate(zip(_disks(attrs), images, strict=True)):
                if image is None:
                    continue
                made = clone_image(session, ctx.principal, image.id, f"{name}-disk-{index}", -1)
                for key in ("IMAGE", "IMAGE_UNAME", "IMAGE_UID"):
                    disk.pop(key, None)
                disk["IMAGE_ID"] = str(made)
        create = wire_body(wire_types.VmTemplateCreate, name=name, template=attrs)
        return TEMPLATES.create(session, ctx.principal, create).id


@method(
    "one.template.instantiate",
    int,
    str,
    bool,
    str,
    bool,
    defaults=("", False, "", False),
    kind="allocate",
)
def template_instantiate(
    ctx: Ctx, template_id: int, name: str, hold: bool, extra: str, persistent: bool
) -> int:
    """Create a VM from the template (merged with `extra`); its id. The VM is PENDING (HOLD
    with hold) and the scheduler places it."""
    if persistent:
        raise OneError(
            ACTION,
            "persistent instantiation (private persistent copies of the images) is not"
            " supported: clone the template recursively, make its images persistent, then"
            " instantiate the copy",
            template_id,
        )
    attrs = read_template(extra) if extra.strip() else {}
    body = wire_body(
        wire_types.VmCreate, name=name or None, template_id=template_id, hold=hold, template=attrs
    )
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, VmTemplate, KIND, template_id, "USE")
        out = VMS.create(session, ctx.principal, body)
    ctx.frontend.wake()
    return out.id
