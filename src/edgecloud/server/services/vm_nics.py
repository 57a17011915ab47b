"""NICs attached to and detached from a VM (OpenNebula's one.vm.attachnic / detachnic).

A NIC is leased and recorded in the VM's template at once. On a RUNNING VM it is then
hot-plugged by an operation (LCM state HOTPLUG_NIC; a failure leaves the VM RUNNING with
the error, and the NIC taken out again and its lease given back). A VM that does not run
(PENDING, HOLD, POWEROFF, UNDEPLOYED) just has its template changed: its next deploy
plugs what the template says. A saved VM (SUSPENDED, STOPPED) is refused: its memory
image was taken with the NICs it had, and a restore must rebuild that same machine.

Detaching from a RUNNING VM unplugs the NIC first; its lease is given back once that
step succeeded (machine.finish_plan). Elsewhere the NIC and its lease go at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import state_label
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Host, Operation, SecurityGroup, Vm, Vnet, now
from edgecloud.server.errors import ApiError, Conflict, InvalidInput, NotFound
from edgecloud.server.lifecycle import machine
from edgecloud.server.services import operations
from edgecloud.server.services.objects import load
from edgecloud.server.services.vm_lifecycle import drop_nic, history, start_plan
from edgecloud.server.services.vms import lease_nic, nic_vnet, vnet_clusters

RECORD_ONLY = frozenset({machine.PENDING, machine.HOLD, machine.POWEROFF, machine.UNDEPLOYED})
SAVED = frozenset({machine.SUSPENDED, machine.STOPPED})
MAX_NIC_ID = 255


def _template_nics(row: Vm) -> list[dict[str, Any]]:
    return [dict(n) for n in row.template.get("NIC", []) or []]


def find_nic(row: Vm, nic_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return a copy of the VM's NICs and the one with `nic_id` in it (404 naming nic_id)."""
    nics = _template_nics(row)
    for nic in nics:
        if str(nic.get("NIC_ID")) == str(nic_id):
            return nics, nic
    raise NotFound(f"VM {row.id} has no NIC {nic_id}", field="nic_id")


def _changeable(session: Session, row: Vm, verb: str) -> None:
    """Refuse a NIC change in a state that has none, or while an operation runs."""
    current = (row.state, row.lcm_state)
    if current in SAVED:
        raise Conflict(
            f"VM {row.id} is {state_label(*current)}: its saved memory has the NICs it had; "
            f"resume it to {verb} a NIC",
            field="id",
        )
    if current != machine.RUNNING and current not in RECORD_ONLY:
        raise Conflict(
            f"VM {row.id} is {state_label(*current)}: a NIC can be {verb}ed when it is "
            "RUNNING, POWEROFF, UNDEPLOYED, PENDING or HOLD",
            field="id",
        )
    running = operations.active_for(session, "VM", row.id)
    if running is not None:
        raise Conflict(
            f"VM {row.id} has operation {running.id} ({running.kind}) in progress", field="id"
        )


def _vnet(session: Session, principal: Principal, body: wire.NicAttach) -> tuple[Vnet, str]:
    """Return the vnet the body names and the field that named it."""
    if (body.network_id is None) == (body.network is None):
        raise InvalidInput("network_id", "give the vnet: network_id or network (its name)")
    if body.network_id is not None:
        ref: dict[str, Any] = {"NETWORK_ID": body.network_id}
        field = "network_id"
    else:
        ref, field = {"NETWORK": body.network}, "network"
    try:
        return nic_vnet(session, principal, ref, field), field
    except ApiError as exc:
        exc.field = field  # "vnet N does not exist" is about this field, not the VM's id
        raise


def _check_cluster(session: Session, row: Vm, vnet: Vnet, field: str) -> None:
    """The vnet must reach the VM's host (or, unplaced, share a cluster with its NICs)."""
    clusters = vnet_clusters(session, vnet.id)
    host = session.get(Host, row.host_id) if row.host_id is not None else None
    if host is not None:
        if host.cluster_id not in clusters:
            raise InvalidInput(
                field,
                f"vnet '{vnet.name}' is in cluster(s) {sorted(clusters)}, not in cluster "
                f"{host.cluster_id} of the VM's host {host.id}",
            )
        return
    for nic in _template_nics(row):
        if not clusters & vnet_clusters(session, int(nic["NETWORK_ID"])):
            raise InvalidInput(
                field,
                f"vnet '{vnet.name}' shares no cluster with the VM's NIC {nic.get('NIC_ID')}",
            )


def _groups(session: Session, principal: Principal, ids: list[int]) -> str:
    for group_id in ids:
        try:
            load(session, principal, SecurityGroup, "SECGROUP", group_id, right="USE")
        except ApiError as exc:
            exc.field = "security_groups"
            raise
    return ",".join(str(g) for g in dict.fromkeys(ids))


def attach(
    session: Session, principal: Principal, vm_id: int, body: wire.NicAttach
) -> tuple[Vm, Operation | None]:
    """Lease and record a NIC; queue its hotplug when the VM runs."""
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    _changeable(session, row, "attach")
    running = (row.state, row.lcm_state) == machine.RUNNING
    if running and row.hypervisor == "microvm":
        raise Conflict(
            f"VM {row.id} is a microvm: it has no hotplug; power it off to change its NICs",
            field="id",
        )
    vnet, field = _vnet(session, principal, body)
    _check_cluster(session, row, vnet, field)
    nics = _template_nics(row)
    nic_id = max((int(n.get("NIC_ID", -1)) for n in nics), default=-1) + 1
    if nic_id > MAX_NIC_ID:
        raise Conflict(f"VM {row.id} has NIC ids up to {MAX_NIC_ID} already", field="id")
    nic: dict[str, Any] = {"SECURITY_GROUPS": _groups(session, principal, body.security_groups)}
    nic.update({k: v for k, v in (("IP", body.ip), ("MAC", body.mac)) if v is not None})
    lease_nic(session, row, vnet, nic, nic_id)
    row.template = {**row.template, "NIC": [*nics, nic]}
    row.updated_at = now()
    plan = machine.plan_for("attach_nic", (row.state, row.lcm_state))
    if plan is None:
        history(session, row, "nic-attach", principal.user_id, f"NIC {nic_id} on vnet {vnet.id}")
        return row, None
    params: dict[str, object] = {"nic_id": nic_id, "network_id": vnet.id}
    return row, start_plan(session, row, "attach_nic", plan, params, principal.user_id)


def detach(
    session: Session, principal: Principal, vm_id: int, nic_id: int
) -> tuple[Vm, Operation | None]:
    """Unplug a NIC (queued when the VM runs) and give its lease back."""
    row = load(session, principal, Vm, "VM", vm_id, right="MANAGE", lock=True)
    find_nic(row, nic_id)
    _changeable(session, row, "detach")
    plan = machine.plan_for("detach_nic", (row.state, row.lcm_state))
    if plan is None:
        drop_nic(session, row, nic_id)
        row.updated_at = now()
        history(session, row, "nic-detach", principal.user_id, f"NIC {nic_id}")
        return row, None
    return row, start_plan(session, row, "detach_nic", plan, {"nic_id": nic_id}, principal.user_id)
