"""Requesting VM actions: check the state, apply record-only actions, queue the rest."""

from __future__ import annotations

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import VM_STATE, lcm_state_name, vm_state_name
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Host, Image, Operation, Vm, VmHistory, now
from edgecloud.server.errors import Conflict, Forbidden, InvalidInput
from edgecloud.server.services import ipam, operations
from edgecloud.server.services.vm_actions import QUEUED, RULES


def state_label(state: int, lcm_state: int) -> str:
    """Name a (STATE, LCM_STATE) pair the way OpenNebula's CLI shows it."""
    if state == VM_STATE["ACTIVE"]:
        return f"ACTIVE/{lcm_state_name(lcm_state)}"
    return vm_state_name(state)


def request_action(
    session: Session, principal: Principal, row: Vm, body: wire.VmAction
) -> Operation | None:
    """Validate `body` against the VM's state; apply it now or return the queued operation."""
    rule = RULES[body.action]
    if rule.admin and not principal.is_admin:
        raise Forbidden(f"{body.action} needs the ADMIN right on VM {row.id}", field="action")
    current = (row.state, row.lcm_state)
    if current not in rule.allowed:
        allowed = sorted({state_label(*s) for s in rule.allowed})
        raise Conflict(
            f"action: {body.action} is not valid in state {state_label(*current)} "
            f"(valid in: {', '.join(allowed)})",
            field="action",
        )
    running = operations.active_for(session, "VM", row.id)
    if running is not None:
        raise Conflict(
            f"VM {row.id} has operation {running.id} ({running.kind}) in progress", field="id"
        )
    _check_arguments(session, body)
    if not rule.needs_host or (body.action == "terminate" and current in QUEUED):
        _apply_now(session, principal, row, body)
        return None
    op = operations.start(
        session,
        kind=f"vm.{body.action}",
        object_type="VM",
        object_id=row.id,
        owner_id=principal.user_id,
        params=body.model_dump(exclude={"action"}, exclude_none=True),
    )
    history(session, row, f"{body.action} requested", principal.user_id, f"operation {op.id}")
    return op


def _check_arguments(session: Session, body: wire.VmAction) -> None:
    if body.action in ("deploy", "migrate"):
        if body.host_id is None and body.action == "migrate":
            raise InvalidInput("host_id", "migrate needs a target host")
        if body.host_id is not None and session.get(Host, body.host_id) is None:
            raise InvalidInput("host_id", f"host {body.host_id} does not exist")
    if body.action == "recover" and body.recover is None:
        raise InvalidInput("recover", "say how: success, failure, retry, delete or recreate")


def _apply_now(session: Session, principal: Principal, row: Vm, body: wire.VmAction) -> None:
    if body.action == "hold":
        row.state = VM_STATE["HOLD"]
    elif body.action == "release":
        row.state = VM_STATE["PENDING"]
    elif body.action in ("resched", "unresched"):
        row.template = {**row.template, "RESCHED": "1" if body.action == "resched" else "0"}
    elif body.action == "terminate":
        end_vm(session, row, principal.user_id)
        return
    row.updated_at = now()
    history(session, row, body.action, principal.user_id)


def end_vm(session: Session, row: Vm, user_id: int | None, action: str = "terminate") -> None:
    """Move a VM to DONE, giving back its leases and image references."""
    row.state, row.lcm_state = VM_STATE["DONE"], 0
    row.ended_at = row.updated_at = now()
    ipam.release_vm(session, row.id)
    for disk in row.template.get("DISK", []):
        image = session.get(Image, int(disk["IMAGE_ID"])) if "IMAGE_ID" in disk else None
        if image is not None and image.running_vms > 0:
            image.running_vms -= 1
    history(session, row, action, user_id)


def history(session: Session, row: Vm, action: str, user_id: int | None, detail: str = "") -> None:
    """Append a record of the VM's current state to its history."""
    session.add(
        VmHistory(
            vm_id=row.id,
            action=action,
            user_id=user_id,
            host_id=row.host_id,
            state=row.state,
            lcm_state=row.lcm_state,
            at=now(),
            detail=detail,
        )
    )
