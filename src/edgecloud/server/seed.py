"""What `edgecloud up --local-host` adds once: this machine as a host, the tiny images and
templates, so a new user can `edgecloud vm create --template tiny-vm --wait` at once."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api.infra import HostCreate
from edgecloud.api.workload import ImageCreate, VmTemplateCreate
from edgecloud.images.tiny import Tiny
from edgecloud.server.auth.access import Principal
from edgecloud.server.auth.authn import principal_of
from edgecloud.server.db.models import Datastore, Image, User, VmTemplate
from edgecloud.server.db.models import Host as HostRow
from edgecloud.server.services.hosts import Hosts
from edgecloud.server.services.images import Images
from edgecloud.server.services.objects import new_owned
from edgecloud.server.services.vm_templates import VmTemplates


def admin(session: Session) -> Principal:
    """Return the built-in administrator (user 0) as a principal."""
    user = session.get(User, 0)
    assert user is not None, "the store is bootstrapped before anything is seeded"
    return principal_of(session, user)


def register_local_host(session: Session, root: str) -> HostRow | None:
    """Add this machine as a host of the default cluster (local transport), once."""
    name = socket.gethostname() or "localhost"
    if session.scalar(select(HostRow.id).where(HostRow.name == name)) is not None:
        return None
    body = HostCreate(name=name, cluster_id=0, hypervisor="kvm", transport="local", root=root)
    principal = admin(session)
    created: HostRow = new_owned(principal, Hosts().build(session, principal, body))
    created.template = {"LOCAL": "YES"}
    session.add(created)
    session.flush()
    return created


def tiny_templates(tiny: Tiny, ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Return the templates of the tiny VM, container and microVM by name."""
    marker = tiny.marker
    return {
        "tiny-vm": {
            "NAME": "tiny-vm",
            "HYPERVISOR": "kvm",
            "CPU": "0.5",
            "VCPU": "1",
            "MEMORY": "192",
            "OS": {
                "KERNEL_DS": f"$FILE[IMAGE_ID={ids['tiny-kernel']}]",
                "INITRD_DS": f"$FILE[IMAGE_ID={ids['tiny-initrd']}]",
                "KERNEL_CMD": tiny.cmdline,
            },
            "READY_MARKER": marker,
        },
        "tiny-microvm": {
            "NAME": "tiny-microvm",
            "HYPERVISOR": "microvm",
            "CPU": "0.5",
            "VCPU": "1",
            "MEMORY": "128",
            "OS": {
                "KERNEL_DS": f"$FILE[IMAGE_ID={ids['tiny-kernel']}]",
                "INITRD_DS": f"$FILE[IMAGE_ID={ids['tiny-initrd']}]",
                "KERNEL_CMD": tiny.microvm_cmdline,
            },
            "READY_MARKER": marker,
        },
        "tiny-container": {
            "NAME": "tiny-container",
            "HYPERVISOR": "lxc",
            "CPU": "0.1",
            "VCPU": "1",
            "MEMORY": "64",
            "DISK": [{"IMAGE_ID": str(ids["tiny-rootfs"])}],
            "READY_MARKER": marker,
        },
    }


def register_tiny(session: Session, tiny: Tiny) -> list[str]:
    """Register the tiny images and templates (owned by the admin, usable by everyone)."""
    principal = admin(session)
    files = session.scalar(select(Datastore.id).where(Datastore.kind == "file"))
    images_ds = session.scalar(select(Datastore.id).where(Datastore.kind == "image"))
    assert files is not None, "bootstrap makes the files datastore"
    assert images_ds is not None, "bootstrap makes the default image datastore"
    wanted = [
        ("tiny-kernel", "KERNEL", files, tiny.kernel, "raw"),
        ("tiny-initrd", "RAMDISK", files, tiny.initrd, "raw"),
        ("tiny-rootfs", "OS", images_ds, tiny.rootfs, "dir"),
    ]
    added: list[str] = []
    ids: dict[str, int] = {}
    for name, kind, ds, path, fmt in wanted:
        row = session.scalars(select(Image).where(Image.name == name, Image.owner_id == 0)).first()
        if row is None:
            body = ImageCreate.model_validate(
                {"name": name, "datastore_id": ds, "kind": kind, "path": str(path), "format": fmt}
            )
            row = new_owned(principal, Images().build(session, principal, body))
            row.perms = 0o644
            session.add(row)
            session.flush()
            added.append(name)
        elif row.path != str(path):
            row.path = str(path)  # a rebuilt cache moved the files
        ids[name] = row.id
    for name, template in tiny_templates(tiny, ids).items():
        tpl = session.scalars(
            select(VmTemplate).where(VmTemplate.name == name, VmTemplate.owner_id == 0)
        ).first()
        if tpl is None:
            spec = VmTemplateCreate(name=name, template=template)
            made = session.get(VmTemplate, VmTemplates().create(session, principal, spec).id)
            assert made is not None
            made.perms = 0o644
            added.append(name)
    return added
