"""Changing a VM's size and configuration while it runs nowhere (OpenNebula's one.vm.resize
and one.vm.updateconf): the changes take effect when it boots next.

A powered-off VM keeps its place on its host: its host's used capacity follows the new
size, refused when the host has no room (unless an administrator says `enforce = false`).
Quotas are checked for the growth.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import state_label
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Vm, now
from edgecloud.server.errors import Conflict, Forbidden, InvalidInput
from edgecloud.server.lifecycle import capacity, machine
from edgecloud.server.services import quotas
from edgecloud.server.services.objects import load, parse_template_input
from edgecloud.server.services.vm_lifecycle import history

# Where a VM runs nowhere: its template is read again when it is deployed or booted.
CHANGEABLE = (machine.POWEROFF, machine.UNDEPLOYED, machine.PENDING, machine.HOLD)
SECTIONS = ("OS", "FEATURES", "INPUT", "GRAPHICS", "RAW", "CPU_MODEL", "CONTEXT")


def _changeable(session: Session, principal: Principal, vm_id: int, verb: str) -> Vm:
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    if (row.state, row.lcm_state) not in CHANGEABLE:
        raise Conflict(
            f"VM {row.id} is {state_label(row.state, row.lcm_state)}: power it off (or "
            f"undeploy it) to {verb} it",
            field="id",
        )
    return row


def resize(session: Session, principal: Principal, vm_id: int, body: wire.VmResize) -> Vm:
    """Give the VM a new size (capacity and quotas checked, all or nothing)."""
    row = _changeable(session, principal, vm_id, "resize")
    if not body.enforce and not principal.is_admin:
        raise Forbidden("only administrators may resize without checking the host's capacity")
    cpu = row.cpu if body.cpu is None else body.cpu
    vcpu = row.vcpu if body.vcpu is None else body.vcpu
    memory = row.memory_mb if body.memory_mb is None else body.memory_mb
    if (cpu, vcpu, memory) == (row.cpu, row.vcpu, row.memory_mb):
        return row
    growth = quotas.Usage(cpu=max(0.0, cpu - row.cpu), memory_mb=max(0, memory - row.memory_mb))
    quotas.charge(session, row.owner_id, row.group_id, growth)
    holds_host = row.host_id is not None and (row.state, row.lcm_state) == machine.POWEROFF
    if holds_host:
        capacity.release(session, row.host_id, row)
    before = f"CPU {row.cpu:g}, VCPU {row.vcpu}, MEMORY {row.memory_mb}"
    row.cpu, row.vcpu, row.memory_mb = cpu, vcpu, memory
    row.template = {**row.template, "CPU": f"{cpu:g}", "VCPU": str(vcpu), "MEMORY": str(memory)}
    if holds_host and row.host_id is not None:
        if body.enforce:
            capacity.reserve(session, row.host_id, row, field="memory_mb")
        else:
            capacity.take(session, row.host_id, row)
    row.updated_at = now()
    history(
        session,
        row,
        "resize",
        principal.user_id,
        f"{before} -> CPU {cpu:g}, VCPU {vcpu}, MEMORY {memory}",
    )
    return row


def update_conf(session: Session, principal: Principal, vm_id: int, body: wire.VmUpdateConf) -> Vm:
    """Replace (or merge into) the VM's OS, FEATURES, ... CONTEXT sections."""
    row = _changeable(session, principal, vm_id, "reconfigure")
    given = parse_template_input(body.template)
    unknown = sorted(set(given) - set(SECTIONS))
    if unknown:
        raise InvalidInput(
            "template", f"{', '.join(unknown)}: only {', '.join(SECTIONS)} can be changed"
        )
    template: dict[str, Any] = dict(row.template)
    for key, value in given.items():
        if not isinstance(value, dict):
            raise InvalidInput(f"template.{key}", "must be a vector attribute (KEY = [ ... ])")
        current = template.get(key)
        merged = {**current, **value} if body.merge and isinstance(current, dict) else value
        template[key] = merged
    row.template = template
    row.updated_at = now()
    history(session, row, "updateconf", principal.user_id, ", ".join(sorted(given)))
    return row
