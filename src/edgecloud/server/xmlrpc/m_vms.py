"""one.vm.*: VMs through the VM services (allocate, info, actions, deploy, migrate, recover,
attributes, name, ownership, permissions, monitoring).

Disks, NICs, snapshots and resizing are in m_vms_disks, the pools in m_vms_pool. A VM
the caller may not see answers AUTHORIZATION, as OpenNebula does, and one that does not
exist NO_EXISTS; a refused action, ACTION with the service's reason.
"""

from __future__ import annotations

from sqlalchemy import select

from edgecloud.api import workload as wire
from edgecloud.api.common import Chmod, Chown
from edgecloud.server.db.models import Group, User, Vm, VmSample
from edgecloud.server.xmlrpc import m_vms_disks  # noqa: F401 (registers its methods)
from edgecloud.server.xmlrpc.core import ACTION, ALLOCATE, Ctx, OneError, method
from edgecloud.server.xmlrpc.m_vms_base import attributes, publish, vm_access, vms, wire_body
from edgecloud.server.xmlrpc.m_vms_pool import SAMPLE_COLUMNS, load_extras, monitoring_data
from edgecloud.server.xmlrpc.m_vms_render import vm_document

# one.vm.action's names: (our action, hard).
ACTIONS: dict[str, tuple[str, bool]] = {
    "terminate": ("terminate", False),
    "terminate-hard": ("terminate", True),
    "undeploy": ("undeploy", False),
    "undeploy-hard": ("undeploy", True),
    "poweroff": ("poweroff", False),
    "poweroff-hard": ("poweroff", True),
    "reboot": ("reboot", False),
    "reboot-hard": ("reboot", True),
    "hold": ("hold", False),
    "release": ("release", False),
    "stop": ("stop", False),
    "suspend": ("suspend", False),
    "resume": ("resume", False),
    "resched": ("resched", False),
    "unresched": ("unresched", False),
}
# one.vm.recover's operations (5, delete-db, deletes as 3 does: the host is cleaned up
# where it can be reached, never waited for).
RECOVER = {0: "failure", 1: "success", 2: "retry", 3: "delete", 4: "recreate", 5: "delete"}


def act(ctx: Ctx, vm_id: int, body: wire.VmAction) -> int:
    """Request an action through the VM service; return the VM's id."""
    right = "ADMIN" if body.action in ("deploy", "migrate", "recover") else "MANAGE"
    with vm_access(ctx, vm_id, right), ctx.frontend.store.write() as session:
        out = vms.act(session, ctx.principal, vm_id, body)
    publish(ctx.frontend, out.vm)
    return vm_id


@method("one.vm.allocate", str, bool, defaults=(False,), kind="allocate")
def allocate(ctx: Ctx, template: str, hold: bool) -> int:
    """Create a VM from a template (on hold if asked); return its id."""
    attrs = attributes(template, "template")
    body = wire_body(wire.VmCreate, ALLOCATE, template=attrs, hold=hold)
    with ctx.frontend.store.write() as session:
        vm = vms.create(session, ctx.principal, body)
    ctx.frontend.wake()
    return vm.id


@method("one.vm.info", int, bool, defaults=(False,))
def info(ctx: Ctx, vm_id: int, decrypt: bool) -> str:
    """The VM's full document (nothing of ours is encrypted: `decrypt` changes nothing)."""
    with vm_access(ctx, vm_id, "USE"), ctx.frontend.store.read() as session:
        row = vms.load(session, ctx.principal, vm_id, "USE")
        names = session.execute(
            select(User.name, Group.name)
            .select_from(Vm)
            .join(User, User.id == Vm.owner_id)
            .join(Group, Group.id == Vm.group_id)
            .where(Vm.id == vm_id)
        ).one()
        extras = load_extras(session, [(vm_id, names[0], names[1])])
        return vm_document(row, extras[vm_id])


@method("one.vm.action", str, int, kind="action")
def action(ctx: Ctx, name: str, vm_id: int) -> int:
    """terminate[-hard], undeploy[-hard], poweroff[-hard], reboot[-hard], hold, release,
    stop, suspend, resume, resched, unresched."""
    found = ACTIONS.get(name)
    if found is None:
        raise OneError(ACTION, f'Virtual machine action "{name}" is not supported', vm_id)
    verb, hard = found
    return act(ctx, vm_id, wire.VmAction(action=verb, hard=hard))


@method("one.vm.deploy", int, int, bool, int, str, defaults=(False, -1, ""), kind="action")
def deploy(ctx: Ctx, vm_id: int, host_id: int, enforce: bool, ds_id: int, extra: str) -> int:
    """Place a queued VM on a host (administrators). Capacity is always enforced; the
    system datastore is the host's own (`ds_id` is not used)."""
    if extra.strip():
        raise OneError(ACTION, "deploy takes no extra template here (attach NICs instead)", vm_id)
    body = wire_body(wire.VmAction, action="deploy", host_id=host_id)
    return act(ctx, vm_id, body)


@method(
    "one.vm.migrate",
    int,
    int,
    bool,
    bool,
    int,
    int,
    defaults=(False, False, -1, 0),
    kind="action",
)
def migrate(
    ctx: Ctx, vm_id: int, host_id: int, live: bool, enforce: bool, ds_id: int, kind: int
) -> int:
    """Move a VM to another host (administrators): live, or saved and restored."""
    if kind != 0:
        raise OneError(ACTION, "only the save migration type (0) is supported", vm_id)
    body = wire_body(wire.VmAction, action="migrate", host_id=host_id, live=live)
    return act(ctx, vm_id, body)


@method("one.vm.recover", int, int, kind="action")
def recover(ctx: Ctx, vm_id: int, operation: int) -> int:
    """Recover a failed VM: 0 failure, 1 success, 2 retry, 3 delete, 4 delete-recreate,
    5 delete-db (as delete)."""
    how = RECOVER.get(operation)
    if how is None:
        raise OneError(ACTION, f"recover operation {operation} is not 0 to 5", vm_id)
    return act(ctx, vm_id, wire.VmAction(action="recover", recover=how))


@method("one.vm.update", int, str, int, defaults=(0,), kind="action")
def update(ctx: Ctx, vm_id: int, template: str, append: int) -> int:
    """Replace the USER_TEMPLATE, or merge into it (append 1)."""
    attrs = attributes(template, "user_template")
    with vm_access(ctx, vm_id), ctx.frontend.store.write() as session:
        if append:
            attrs = {**vms.load(session, ctx.principal, vm_id, "MANAGE").user_template, **attrs}
        vms.update(session, ctx.principal, vm_id, wire.VmUpdate(user_template=attrs))
    ctx.frontend.wake()
    return vm_id


@method("one.vm.rename", int, str, kind="action")
def rename(ctx: Ctx, vm_id: int, name: str) -> int:
    """Rename the VM."""
    body = wire_body(wire.VmUpdate, name=name)
    with vm_access(ctx, vm_id), ctx.frontend.store.write() as session:
        vms.update(session, ctx.principal, vm_id, body)
    return vm_id


@method("one.vm.chown", int, int, int, kind="action")
def chown(ctx: Ctx, vm_id: int, uid: int, gid: int) -> int:
    """Give the VM to a user and/or group (-1 keeps it)."""
    body = wire_body(Chown, owner_id=uid if uid >= 0 else None, group_id=gid if gid >= 0 else None)
    with vm_access(ctx, vm_id), ctx.frontend.store.write() as session:
        vms.chown(session, ctx.principal, vm_id, body)
    return vm_id


@method("one.vm.chmod", int, int, int, int, int, int, int, int, int, int, kind="action")
def chmod(ctx: Ctx, vm_id: int, *bits: int) -> int:
    """Set the 9 permission bits (owner, group, other x use, manage, admin; -1 keeps one)."""
    with vm_access(ctx, vm_id), ctx.frontend.store.write() as session:
        perms = vms.load(session, ctx.principal, vm_id, "MANAGE").perms
        for index, bit in enumerate(bits):
            mask = 1 << (8 - index)
            if bit >= 0:
                perms = perms | mask if bit else perms & ~mask
        vms.chmod(session, ctx.principal, vm_id, Chmod(permissions=f"{perms:03o}"))
    return vm_id


@method("one.vm.monitoring", int)
def monitoring(ctx: Ctx, vm_id: int) -> str:
    """The VM's monitoring samples kept (MONITORING_DATA), oldest first."""
    with vm_access(ctx, vm_id, "USE"), ctx.frontend.store.read() as session:
        vms.load(session, ctx.principal, vm_id, "USE")
        rows = session.execute(
            select(*SAMPLE_COLUMNS).where(VmSample.vm_id == vm_id).order_by(VmSample.at)
        )
        return monitoring_data(rows)
