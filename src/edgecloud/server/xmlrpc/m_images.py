"""one.image.* and one.imagepool.info, onto the Images service (and, imported from here,
the VM template family: m_templates).

allocate's template: NAME, TYPE (OS, CDROM, DATABLOCK, KERNEL, RAMDISK, CONTEXT),
PERSISTENT, FORMAT (raw, qcow2, dir; found from the bytes when left out), and where the
bytes come from: PATH an http(s) URL (downloaded) or a file on the front-end (copied in,
administrators), SOURCE a path on the hosts used in place (administrators), or neither
with SIZE (MiB) for an empty DATABLOCK. Other attributes are kept in the image's TEMPLATE.
"""

from __future__ import annotations

import re
from typing import Any

from edgecloud.api import workload as wire_types
from edgecloud.api.common import Chmod, Chown
from edgecloud.server.db.models import Image
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services.images import DISABLED, READY, Images
from edgecloud.server.xmlrpc import m_templates  # noqa: F401  (registers one.template.*)
from edgecloud.server.xmlrpc.core import ACTION, Ctx, OneError, method, wire_body
from edgecloud.server.xmlrpc.m_images_render import (
    IMAGE_SELECT,
    IMAGE_TYPES,
    chmod_bits,
    clone_image,
    image_documents,
    load,
    optional_id,
    read_template,
)
from edgecloud.server.xmlrpc.pools import PoolFilter
from edgecloud.server.xmlrpc.xml import dumps, pool

IMAGES = Images()
KIND = "IMAGE"
_URL = re.compile(r"^https?://", re.IGNORECASE)
_YES = {"YES": True, "TRUE": True, "1": True, "NO": False, "FALSE": False, "0": False}


def _scalar(attrs: dict[str, Any], key: str, default: str = "") -> str:
    """Take a single-valued attribute out of `attrs`."""
    value = attrs.pop(key, default)
    if not isinstance(value, str):
        raise InvalidInput(key, "must be a single value")
    return value.strip()


def image_create(attrs: dict[str, Any], datastore_id: int) -> wire_types.ImageCreate:
    """The create body of an allocate template (see the module's docstring)."""
    attrs = dict(attrs)
    name = _scalar(attrs, "NAME")
    if not name:
        raise InvalidInput("NAME", "the template needs a NAME")
    kind = _scalar(attrs, "TYPE", "OS").upper()
    if kind not in IMAGE_TYPES:
        raise InvalidInput("TYPE", f"must be one of {', '.join(IMAGE_TYPES)}, not {kind!r}")
    persistent = _YES.get(_scalar(attrs, "PERSISTENT", "NO").upper())
    if persistent is None:
        raise InvalidInput("PERSISTENT", "must be YES or NO")
    size = _scalar(attrs, "SIZE", "0")
    if not size.isdigit():
        raise InvalidInput("SIZE", f"must be a whole number of MiB, not {size!r}")
    fmt = _scalar(attrs, "FORMAT").lower() or None
    path, source = _scalar(attrs, "PATH"), _scalar(attrs, "SOURCE")
    where: dict[str, str] = {}
    if path and source:
        raise InvalidInput("SOURCE", "give PATH or SOURCE, not both")
    if _URL.match(path):
        where["url"] = path
    elif path.startswith("/"):
        where["import_path"] = path
    elif path:
        raise InvalidInput("PATH", "must be an http(s) URL or an absolute path on the front-end")
    elif source:
        where["path"] = source
    elif kind != "DATABLOCK" or int(size) <= 0:
        raise InvalidInput("PATH", "give PATH (a URL or a file), or SIZE for an empty DATABLOCK")
    return wire_body(
        wire_types.ImageCreate,
        name=name,
        datastore_id=datastore_id,
        kind=kind,
        persistent=persistent,
        size_mb=int(size),
        format=fmt,
        template=attrs,
        **where,
    )


@method("one.image.allocate", str, int, bool, defaults=(False,), kind="allocate")
def image_allocate(ctx: Ctx, text: str, datastore_id: int, no_check_capacity: bool) -> int:
    """Register an image (LOCKED until a URL or file is copied in, then READY)."""
    body = image_create(read_template(text), datastore_id)
    with ctx.frontend.store.write() as session:
        return IMAGES.create(session, ctx.principal, body).id


@method("one.image.info", int, bool, defaults=(False,))
def image_info(ctx: Ctx, image_id: int, decrypt: bool) -> str:
    """The IMAGE document."""
    with ctx.frontend.store.read() as session:
        load(session, ctx.principal, Image, KIND, image_id, "USE")
        return dumps(image_documents(session, IMAGE_SELECT.where(Image.id == image_id))[0])


@method("one.imagepool.info", int, int, int)
def imagepool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The IMAGE_POOL document: the images the filter selects that the caller may see."""
    stmt = PoolFilter(flag, start, end).apply(IMAGE_SELECT, KIND, ctx.principal)
    with ctx.frontend.store.read() as session:
        return pool("IMAGE_POOL", image_documents(session, stmt))


@method("one.image.delete", int, bool, defaults=(False,), kind="action")
def image_delete(ctx: Ctx, image_id: int, force: bool) -> int:
    """Delete an image no VM uses (its bytes go with it)."""
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        IMAGES.delete(session, ctx.principal, image_id)
    return image_id


@method("one.image.update", int, str, int, defaults=(0,), kind="action")
def image_update(ctx: Ctx, image_id: int, text: str, append: int) -> int:
    """Replace the image's attributes (append=1: merge them)."""
    attrs = read_template(text)
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        merged = {**row.template, **attrs} if append else attrs
        IMAGES.update(session, ctx.principal, image_id, wire_types.ImageUpdate(template=merged))
    return image_id


@method("one.image.chmod", *(int,) * 10, kind="action")
def image_chmod(ctx: Ctx, image_id: int, *bits: int) -> int:
    """Change permission bits (-1 keeps one)."""
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        IMAGES.chmod(
            session, ctx.principal, image_id, Chmod(permissions=chmod_bits(row.perms, bits))
        )
    return image_id


@method("one.image.chown", int, int, int, kind="action")
def image_chown(ctx: Ctx, image_id: int, uid: int, gid: int) -> int:
    """Change owner and/or group (-1 keeps one)."""
    body = wire_body(Chown, owner_id=optional_id(uid), group_id=optional_id(gid))
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        IMAGES.chown(session, ctx.principal, image_id, body)
    return image_id


@method("one.image.rename", int, str, kind="action")
def image_rename(ctx: Ctx, image_id: int, name: str) -> int:
    """Rename an image (names are unique per owner)."""
    checked = wire_body(wire_types.ImageClone, name=name).name
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        IMAGES.rename(session, ctx.principal, row, checked)
    return image_id


@method("one.image.persistent", int, bool, kind="action")
def image_persistent(ctx: Ctx, image_id: int, persistent: bool) -> int:
    """Make an image persistent or not (not while VMs use it)."""
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        body = wire_types.ImageUpdate(persistent=persistent)
        IMAGES.update(session, ctx.principal, image_id, body)
    return image_id


@method("one.image.chtype", int, str, kind="action")
def image_chtype(ctx: Ctx, image_id: int, kind: str) -> int:
    """Change the image's TYPE (OS, CDROM, DATABLOCK, ...)."""
    body = wire_body(wire_types.ImageUpdate, kind=kind.strip().upper())
    with ctx.frontend.store.write() as session:
        load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        IMAGES.update(session, ctx.principal, image_id, body)
    return image_id


@method("one.image.enable", int, bool, kind="action")
def image_enable(ctx: Ctx, image_id: int, enable: bool) -> int:
    """Enable (DISABLED → READY) or disable (READY → DISABLED: no VM may take it) an image."""
    with ctx.frontend.store.write() as session:
        row = load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
        have, want = (DISABLED, READY) if enable else (READY, DISABLED)
        if row.state == have:
            row.state = want
        elif row.state != want:
            state = wire_types.IMAGE_STATES.get(row.state, str(row.state))
            verb = "enabled" if enable else "disabled"
            raise Conflict(f"image {image_id} is {state}: it cannot be {verb}", field="id")
    return image_id


@method("one.image.clone", int, str, int, defaults=(-1,), kind="allocate")
def image_clone(ctx: Ctx, image_id: int, name: str, datastore_id: int) -> int:
    """Copy an image into a new one (datastore -1: the same); its id."""
    with ctx.frontend.store.write() as session:
        return clone_image(session, ctx.principal, image_id, name, datastore_id)


def _no_snapshots(ctx: Ctx, image_id: int, snapshot_id: int) -> int:
    with ctx.frontend.store.read() as session:
        load(session, ctx.principal, Image, KIND, image_id, "MANAGE")
    raise OneError(
        ACTION,
        f"image {image_id} has no snapshot {snapshot_id}: images here keep no snapshots"
        " (snapshots are of a VM's disks: one.vm.disksnapshot*)",
        image_id,
    )


@method("one.image.snapshotdelete", int, int, kind="action")
def image_snapshot_delete(ctx: Ctx, image_id: int, snapshot_id: int) -> int:
    """Not supported: images keep no snapshots (ACTION)."""
    return _no_snapshots(ctx, image_id, snapshot_id)


@method("one.image.snapshotrevert", int, int, kind="action")
def image_snapshot_revert(ctx: Ctx, image_id: int, snapshot_id: int) -> int:
    """Not supported: images keep no snapshots (ACTION)."""
    return _no_snapshots(ctx, image_id, snapshot_id)


@method("one.image.snapshotflatten", int, int, kind="action")
def image_snapshot_flatten(ctx: Ctx, image_id: int, snapshot_id: int) -> int:
    """Not supported: images keep no snapshots (ACTION)."""
    return _no_snapshots(ctx, image_id, snapshot_id)
