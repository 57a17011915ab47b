"""Security groups of one NIC: attach and detach, on a VM in any state."""

from __future__ import annotations

from sqlalchemy.orm import Session

from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import SecurityGroup, Vm, now
from edgecloud.server.errors import Conflict, NotFound
from edgecloud.server.services.objects import load
from edgecloud.server.services.vm_lifecycle import history
from edgecloud.server.services.vm_nics import find_nic


def change(
    session: Session,
    principal: Principal,
    vm_id: int,
    nic_id: int,
    group_id: int,
    *,
    attach: bool,
) -> Vm:
    """Add or remove a group on a NIC (MANAGE on the VM, USE on the group)."""
    vm = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    if vm.state == 6:
        raise Conflict(f"VM {vm_id} is DONE", field="id")
    load(session, principal, SecurityGroup, "SECGROUP", group_id, right="USE")
    nics, nic = find_nic(vm, nic_id)
    groups = [g for g in str(nic.get("SECURITY_GROUPS", "")).split(",") if g]
    if attach and str(group_id) in groups:
        raise Conflict(f"NIC {nic_id} already has security group {group_id}", field="id")
    if not attach and str(group_id) not in groups:
        raise NotFound(f"NIC {nic_id} has no security group {group_id}", field="id")
    groups = [*groups, str(group_id)] if attach else [g for g in groups if g != str(group_id)]
    nic["SECURITY_GROUPS"] = ",".join(groups)
    vm.template = {**vm.template, "NIC": nics}
    vm.updated_at = now()
    verb = "attach" if attach else "detach"
    history(session, vm, f"sg-{verb}", principal.user_id, f"NIC {nic_id}, group {group_id}")
    return vm
