"""VM forms: create a VM from a template (errors shown at their fields), and the actions
(power off, resume, reboot, terminate, migrate ...) behind a confirmation page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import ObjId, ViewerDep, form_errors
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

ACTIVE, POWEROFF, DONE = 3, 8, 6
RUNNING = 3
CREATE_FIELDS = ("name", "template_id", "CPU", "VCPU", "MEMORY")


@dataclass(frozen=True)
class Action:
    """One button of a VM's page and what it asks of the API."""

    key: str
    label: str
    question: str
    states: frozenset[int]
    body: dict[str, Any] = field(default_factory=dict)
    danger: bool = False


ACTIONS: dict[str, Action] = {
    a.key: a
    for a in (
        Action(
            "poweroff",
            "Power off",
            "Power off {name}? The guest is asked to shut down.",
            frozenset({ACTIVE}),
        ),
        Action(
            "poweroff-hard",
            "Power off (hard)",
            "Cut the power of {name} at once?",
            frozenset({ACTIVE}),
            {"action": "poweroff", "hard": True},
            danger=True,
        ),
        Action("resume", "Resume", "Start {name} again?", frozenset({4, 5, POWEROFF, 9})),
        Action("reboot", "Reboot", "Reboot {name}?", frozenset({ACTIVE})),
        Action("hold", "Hold", "Keep {name} from being deployed?", frozenset({1})),
        Action("release", "Release", "Let {name} be deployed?", frozenset({2})),
        Action("migrate", "Migrate", "Move {name} to another host?", frozenset({ACTIVE, POWEROFF})),
        Action(
            "terminate",
            "Terminate",
            "Terminate {name}? Its disks are deleted; this cannot be undone.",
            frozenset({1, 2, ACTIVE, 4, 5, 7, POWEROFF, 9}),
            danger=True,
        ),
        Action(
            "terminate-hard",
            "Terminate (hard)",
            "Destroy {name} at once, without a shutdown? Its disks are deleted.",
            frozenset({ACTIVE, 7, POWEROFF}),
            {"action": "terminate", "hard": True},
            danger=True,
        ),
    )
}
DONE_NOTICES = {key: f"{a.label}: asked; the state below follows it." for key, a in ACTIONS.items()}
DONE_NOTICES["created"] = "VM created; the state below follows it as it is placed and started."


def actions_for(vm: dict[str, Any]) -> list[Action]:
    """The actions that make sense in the VM's state (the API still has the last word)."""
    return [a for a in ACTIONS.values() if vm["state"] in a.states]


def routes(router: APIRouter) -> None:
    """Add the create form and the action pages."""

    @router.get("/vms/new")
    async def create_form(who: ViewerDep, template_id: int | None = None) -> Response:
        values = {"template_id": "" if template_id is None else str(template_id)}
        return await _create_page(who, values, errors={}, error="")

    @router.post("/vms/new")
    async def create(request: Request, who: ViewerDep) -> Response:
        form = await checked_form(request, who)
        values = {k: form.get(k, "").strip() for k in CREATE_FIELDS}
        values["hold"] = "on" if form.get("hold") else ""
        errors: dict[str, str] = {}
        if not values["template_id"].isdigit():
            errors["template_id"] = "choose a template"
        if errors:
            return await _create_page(who, values, errors=errors, error="", status=422)
        overrides = {k: values[k] for k in ("CPU", "VCPU", "MEMORY") if values[k]}
        body = {
            "name": values["name"] or None,
            "template_id": int(values["template_id"]),
            "hold": bool(values["hold"]),
            "template": overrides,
        }
        try:
            vm = await who.api.post("/vms", body)
        except ApiError as exc:
            named, other = form_errors(exc, CREATE_FIELDS)
            return await _create_page(who, values, errors=named, error=other, status=exc.status)
        return RedirectResponse(f"/vms/{vm['id']}?done=created", status_code=303)

    @router.get("/vms/{vm_id}/confirm/{key}")
    async def confirm(who: ViewerDep, vm_id: ObjId, key: str) -> Response:
        action = _action(key)
        vm = await who.api.get(f"/vms/{vm_id}")
        return await _confirm_page(who, vm, action, error="")

    @router.post("/vms/{vm_id}/actions/{key}")
    async def act(request: Request, who: ViewerDep, vm_id: ObjId, key: str) -> Response:
        action = _action(key)
        form = await checked_form(request, who)
        body: dict[str, Any] = {"action": action.key, **action.body}
        if action.key == "migrate":
            if not form.get("host_id", "").isdigit():
                vm = await who.api.get(f"/vms/{vm_id}")
                return await _confirm_page(
                    who, vm, action, error="host_id: choose a host", status=422
                )
            body["host_id"] = int(form["host_id"])
            body["live"] = bool(form.get("live"))
        try:
            await who.api.post(f"/vms/{vm_id}/actions", body)
        except ApiError as exc:
            vm = await who.api.get(f"/vms/{vm_id}")
            return await _confirm_page(who, vm, action, error=exc.message, status=exc.status)
        return RedirectResponse(f"/vms/{vm_id}?done={action.key}", status_code=303)


def _action(key: str) -> Action:
    action = ACTIONS.get(key)
    if action is None:
        raise ApiError(
            404, {"error": "not_found", "message": f"action: no action '{key}'", "field": "action"}
        )
    return action


async def _create_page(
    who: Viewer, values: dict[str, str], *, errors: dict[str, str], error: str, status: int = 200
) -> Response:
    templates = await who.api.get("/templates", limit=500)
    return page(
        who,
        "vm_new.html",
        status=status,
        title="Create a VM",
        templates=templates["items"],
        values=values,
        errors=errors,
        error=error,
    )


async def _confirm_page(
    who: Viewer, vm: dict[str, Any], action: Action, *, error: str, status: int = 200
) -> Response:
    hosts: list[dict[str, Any]] = []
    if action.key == "migrate":
        try:
            hosts = (await who.api.get("/hosts", limit=500))["items"]
        except ApiError:
            hosts = []  # the user may not see hosts: they type an id instead
    return page(
        who,
        "vm_confirm.html",
        status=status,
        title=f"{action.label}: {vm['name']}",
        vm=vm,
        action=action,
        question=action.question.format(name=f"VM {vm['name']} (#{vm['id']})"),
        action_url=f"/vms/{vm['id']}/actions/{action.key}",
        cancel_url=f"/vms/{vm['id']}",
        confirm_label=action.label,
        danger=action.danger,
        error=error,
        hosts=hosts,
    )
