"""Requesting VM actions: check the state, apply record-only actions, queue the rest.

Actions that need a host become operations with the steps of their plan (see
lifecycle/machine.py); the lifecycle engine runs them. Capacity on a named host is
reserved here, under the host's row lock, so a request that cannot fit is refused now.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.api.states import VM_STATE, state_label
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Host, Image, Lease, Operation, Vm, VmHistory, now
from edgecloud.server.errors import Conflict, Forbidden, InvalidInput
from edgecloud.server.lifecycle import capacity, machine
from edgecloud.server.lifecycle.machine import Plan, State
from edgecloud.server.services import ipam, operations
from edgecloud.server.services.images import give_back
from edgecloud.server.services.vm_actions import QUEUED, RULES
from edgecloud.server.services.vm_relocate import relocate_nics, settle


def request_action(
    session: Session, principal: Principal, row: Vm, body: wire.VmAction
) -> Operation | None:
    """Validate `body` against the VM's state; apply it now or return the queued operation."""
    _check_allowed(session, principal, row, body)
    current: State = (row.state, row.lcm_state)
    action = body.action
    if action in ("hold", "release", "resched", "unresched") or (
        action == "terminate" and current in (*QUEUED, machine.STOPPED, machine.UNDEPLOYED)
    ):
        _apply_now(session, principal, row, body)
        return None
    if action == "resume" and current in (machine.STOPPED, machine.UNDEPLOYED):
        row.resume_from = "stopped" if current == machine.STOPPED else "undeployed"
        row.state, row.lcm_state = machine.PENDING
        row.updated_at = now()
        history(session, row, "resume", principal.user_id, "back in the queue to be placed")
        return None
    if action == "recover":
        return _recover(session, principal, row, body)
    params = body.model_dump(exclude={"action", "recover"}, exclude_none=True)
    if action == "deploy":
        host = capacity.reserve(session, _required_host(body), row)
        row.host_id, row.cluster_id = host.id, host.cluster_id
    elif action == "migrate":
        target = _required_host(body)
        if target == row.host_id:
            raise InvalidInput("host_id", f"VM {row.id} already runs on host {target}")
        host = capacity.reserve(session, target, row)
        params["source_host_id"] = row.host_id
        params.pop("nic_map", None)
        params |= relocate_nics(
            session,
            principal,
            row,
            host,
            {str(k): v for k, v in (body.nic_map or {}).items()},
            powered_off=current == machine.POWEROFF,
        )
    plan = machine.plan_for(action, current, live=body.live, resume_from=row.resume_from)
    assert plan is not None, f"no plan for {action} in {current}"
    return start_plan(session, row, action, plan, params, principal.user_id)


def start_plan(
    session: Session,
    row: Vm,
    action: str,
    plan: Plan,
    params: dict[str, object],
    user_id: int,
) -> Operation:
    """Queue an operation that runs `plan` on the VM."""
    if not row.deploy_id:
        row.deploy_id = f"one-{row.id}"
    op = operations.start(
        session,
        kind=f"vm.{action}",
        object_type="VM",
        object_id=row.id,
        owner_id=user_id,
        params={**params, "from": [row.state, row.lcm_state], "plan": plan.to_params()},
        steps=[s.action for s in plan.steps],
    )
    history(session, row, f"{action} requested", user_id, f"operation {op.id}")
    return op


def _check_allowed(session: Session, principal: Principal, row: Vm, body: wire.VmAction) -> None:
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
    if body.action == "recover" and body.recover is None:
        raise InvalidInput("recover", "say how: success, failure, retry, delete or recreate")


def _required_host(body: wire.VmAction) -> int:
    if body.host_id is None:
        what = (
            "a target host"
            if body.action == "migrate"
            else "a host (the scheduler places VMs by itself)"
        )
        raise InvalidInput("host_id", f"{body.action} needs {what}")
    return body.host_id


def _apply_now(session: Session, principal: Principal, row: Vm, body: wire.VmAction) -> None:
    if body.action == "terminate":
        end_vm(session, row, principal.user_id)
        return
    if body.action == "hold":
        row.state = VM_STATE["HOLD"]
    elif body.action == "release":
        row.state = VM_STATE["PENDING"]
    else:
        row.resched = body.action == "resched"
    row.updated_at = now()
    history(session, row, body.action, principal.user_id)


def _recover(
    session: Session, principal: Principal, row: Vm, body: wire.VmAction
) -> Operation | None:
    how = body.recover
    failed = last_failed(session, row.id)
    if how == "retry":
        if failed is None:
            raise Conflict(f"VM {row.id} has no failed operation to retry", field="recover")
        row.state, row.lcm_state = failed.params["from"]
        retry = Plan.from_params(failed.params["plan"])
        params = {k: v for k, v in failed.params.items() if k not in ("from", "plan")}
        return start_plan(
            session, row, failed.kind.removeprefix("vm."), retry, params, principal.user_id
        )
    if how in ("delete", "recreate"):
        # Remove what is left on the host if it can be reached; never block on it.
        done = machine.DONE if how == "delete" else machine.PENDING
        if row.host_id is None:
            if how == "delete":
                end_vm(session, row, principal.user_id, "recover delete")
            else:
                requeue(session, row, principal.user_id, "recover recreate")
            return None
        plan = Plan((machine.cleanup_step(),), done, releases_host=True, best_effort=True)
        return start_plan(
            session, row, "recover", plan, {"hard": True, "recover": how}, principal.user_id
        )
    _settle(session, row, failed, success=how == "success")
    history(session, row, f"recover {how}", principal.user_id)
    return None


def _settle(session: Session, row: Vm, failed: Operation | None, *, success: bool) -> None:
    """Say by hand how a failed or unknown step ended."""
    if row.lcm_state == machine.UNKNOWN[1] or failed is None:
        row.state, row.lcm_state = machine.RUNNING if success else machine.POWEROFF
    elif success:
        plan = Plan.from_params(failed.params["plan"])
        finish_plan(session, row, plan, failed.params)
    row.error = "" if success else row.error
    row.updated_at = now()


def finish_plan(session: Session, row: Vm, plan: Plan, params: dict[str, object]) -> None:
    """Move a VM to its plan's final state: host capacity, placement, DONE."""
    if plan.moves_host:
        capacity.release(session, row.host_id, row)
        settle(session, row, params, done=True)
        target = params["host_id"]
        assert isinstance(target, int)
        host = session.get(Host, target)
        row.host_id, row.cluster_id = target, host.cluster_id if host else row.cluster_id
    if plan.done == machine.DONE:
        end_vm(session, row, None, "done")
        return
    if plan.done == machine.PENDING:
        requeue(session, row, None, "recreate", "recover recreate")
        return
    if plan.releases_host:
        capacity.release(session, row.host_id, row)
        row.host_id = None
    if any(step.action == "nic_detach" for step in plan.steps):
        drop_nic(session, row, params.get("nic_id"))  # unplugged: its address goes back
    for step in plan.steps:
        if step.action in DISK_STEPS:
            disk_settle(session, row, step.action, params, done=True)
    row.state, row.lcm_state = plan.done
    row.updated_at = now()


DISK_STEPS = ("disk_attach", "disk_detach", "disk_resize")


def disk_settle(
    session: Session, row: Vm, action: str, params: dict[str, object], *, done: bool
) -> None:
    """Apply a disk operation's outcome to the template (see vm_disk_changes.settle)."""
    from edgecloud.server.services import vm_disk_changes  # it imports this module

    vm_disk_changes.settle(session, row, action, params, done=done)


def drop_nic(session: Session, row: Vm, nic_id: object) -> None:
    """Take a NIC out of the VM's template and give its lease back."""
    nics = [dict(n) for n in row.template.get("NIC", []) or []]
    gone = [n for n in nics if str(n.get("NIC_ID")) == str(nic_id)]
    if not gone:
        return
    row.template = {**row.template, "NIC": [n for n in nics if n not in gone]}
    for nic in gone:
        lease = session.get(Lease, int(nic["LEASE_ID"])) if "LEASE_ID" in nic else None
        if lease is not None and lease.vm_id == row.id:
            session.delete(lease)
    session.flush()


def requeue(session: Session, row: Vm, user_id: int | None, action: str, why: str = "") -> None:
    """Put a VM back in the queue, off its host, to be placed again from scratch."""
    capacity.release(session, row.host_id, row)
    row.host_id = None
    row.state, row.lcm_state = machine.PENDING
    row.resume_from = ""
    row.deploy_id = ""
    row.updated_at = now()
    history(session, row, action, user_id, why)


def last_failed(session: Session, vm_id: int) -> Operation | None:
    """Return the VM's most recent failed operation."""
    stmt = (
        select(Operation)
        .where(
            Operation.object_type == "VM", Operation.object_id == vm_id, Operation.state == "failed"
        )
        .order_by(Operation.id.desc())
    )
    return session.scalars(stmt.limit(1)).first()


def end_vm(session: Session, row: Vm, user_id: int | None, action: str = "terminate") -> None:
    """Move a VM to DONE, giving back its host capacity, leases and image references."""
    capacity.release(session, row.host_id, row)
    row.host_id = None
    row.state, row.lcm_state = VM_STATE["DONE"], 0
    row.ended_at = row.updated_at = now()
    ipam.release_vm(session, row.id)
    for disk in row.template.get("DISK", []):
        image = session.get(Image, int(disk["IMAGE_ID"])) if "IMAGE_ID" in disk else None
        if image is not None:
            give_back(image)
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
