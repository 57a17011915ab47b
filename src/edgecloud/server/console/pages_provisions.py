"""Provision pages: the list, a provision's page with its live step log, and its operations.

The create form is in `provision_forms`. Everything shown is asked of the REST API with the
viewer's token; the live regions (the list, a provision's facts, its step log) are answered
through `etagged`, so a poll of an unchanged provision costs a 304.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.api.provision import PROVISION_STATES
from edgecloud.server.console import provision_forms
from edgecloud.server.console.api import Api, ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    ObjId,
    ViewerDep,
    form_errors,
    page_links,
    query_string,
)
from edgecloud.server.console.render import etagged, fragment, page
from edgecloud.server.console.session import Viewer, checked_form

FINAL = frozenset({"RUNNING", "ERROR", "DONE"})
STATE_CHOICES = sorted(PROVISION_STATES.items())
PAGE_SIZES = (25, 50, 100, 200)
LOG_TAIL = 64 * 1024  # characters of a step's log shown (its end: what matters most)
STEP_CLASS = {"done": "ok", "failed": "bad"}
# What `made` holds, as a person reads it, and where each kind's console page is.
MADE_KINDS = (
    ("cluster", "Cluster", "/clusters/"),
    ("hosts", "Host", "/hosts/"),
    ("datastores", "Datastore", ""),
    ("vnets", "Network", "/networks/"),
    ("images", "Image", "/images/"),
    ("templates", "VM template", ""),
)
ActionName = Literal["retry", "scale", "configure", "delete"]


@dataclass(frozen=True)
class Action:
    """An operation of a provision, asked for through a confirmation page."""

    key: str
    label: str
    question: str
    states: frozenset[str]
    danger: bool = False


ACTIONS: dict[str, Action] = {
    a.key: a
    for a in (
        Action(
            "retry",
            "Retry",
            "Resume the failed {operation} of {name} at its step {step}?",
            frozenset({"ERROR"}),
        ),
        Action(
            "scale",
            "Scale",
            "Change how many hosts {name} has? Hosts are added or removed at the provider.",
            frozenset({"RUNNING"}),
        ),
        Action(
            "configure",
            "Configure",
            "Run the host configuration of {name} again?",
            frozenset({"RUNNING"}),
        ),
        Action(
            "delete",
            "Delete",
            "Delete {name}? Its cluster, hosts, datastores and networks are removed here, "
            "then everything it made at the provider. This cannot be undone.",
            frozenset({"RUNNING", "ERROR"}),
            danger=True,
        ),
    )
}
DONE_NOTICES = {
    "created": "Provision created; its state and step log below follow the work.",
    "retry": "Retry asked: the operation resumes at the step that failed.",
    "scale": "Scale asked: the state and step log below follow it.",
    "configure": "Configuration asked: the state and step log below follow it.",
    "delete": "Delete asked: the state and step log below follow it.",
}


async def _listing(
    who: ViewerDep,
    name: Annotated[str, Query(max_length=128)] = "",
    state: Annotated[str, Query(pattern=r"^[0-6]?$")] = "",
    all: Annotated[str, Query(max_length=5)] = "",
    cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """One page of provisions (a dependency: the list page and its live region share it)."""
    filters = {"name": name.strip(), "state": state, "all": "1" if all else ""}
    answer = await who.api.get(
        "/provisions",
        limit=limit,
        cursor=cursor,
        name=filters["name"],
        state=state,
        all="true" if all else None,
    )
    kept = {**filters, "limit": limit if limit != PAGE_SIZE else None}
    return {
        "provisions": answer["items"],
        **page_links("/provisions", kept, cursor, answer.get("next_cursor")),
        "live_url": "/provisions/live" + query_string(**kept, cursor=cursor),
        "filters": filters,
        "limit": limit,
        "page_sizes": PAGE_SIZES,
        "state_choices": STATE_CHOICES,
    }


Listing = Annotated[dict[str, Any], Depends(_listing)]


def routes(router: APIRouter) -> None:
    """Add the provision pages (the fixed paths before /provisions/{id})."""
    provision_forms.routes(router)

    @router.get("/provisions")
    async def provision_list(who: ViewerDep, listing: Listing) -> Response:
        return page(who, "provisions.html", title="Provisions", watch="provision", **listing)

    @router.get("/provisions/live")
    async def provision_list_live(who: ViewerDep, listing: Listing) -> Response:
        return etagged(who, fragment(who, "provision_table.html", **listing))

    @router.get("/provisions/{prov_id}")
    async def provision_page(who: ViewerDep, prov_id: ObjId, done: str = "") -> Response:
        found, steps = await asyncio.gather(
            who.api.get(f"/provisions/{prov_id}"), who.api.get(f"/provisions/{prov_id}/log")
        )
        return page(
            who,
            "provision.html",
            title=f"Provision {found['name']}",
            watch="provision",
            notice=DONE_NOTICES.get(done, ""),
            **{**_facts(found), **_log(found, steps)},
        )

    @router.get("/provisions/{prov_id}/live")
    async def provision_live(who: ViewerDep, prov_id: ObjId) -> Response:
        found = await who.api.get(f"/provisions/{prov_id}")
        return etagged(who, fragment(who, "provision_live.html", **_facts(found)))

    @router.get("/provisions/{prov_id}/log")
    async def provision_log(who: ViewerDep, prov_id: ObjId) -> Response:
        found, steps = await asyncio.gather(
            who.api.get(f"/provisions/{prov_id}"), who.api.get(f"/provisions/{prov_id}/log")
        )
        return etagged(who, fragment(who, "provision_log.html", **_log(found, steps)))

    @router.get("/provisions/{prov_id}/{action}")
    async def provision_action_form(who: ViewerDep, prov_id: ObjId, action: ActionName) -> Response:
        found = await who.api.get(f"/provisions/{prov_id}")
        return _confirm(who, found, ACTIONS[action], {}, {}, "")

    @router.post("/provisions/{prov_id}/{action}")
    async def provision_action(
        request: Request, who: ViewerDep, prov_id: ObjId, action: ActionName
    ) -> Response:
        form = await checked_form(request, who)
        try:
            await _ask(who.api, prov_id, action, form)
        except ApiError as exc:
            found = await who.api.get(f"/provisions/{prov_id}")
            named = {"scale": ("hosts",), "delete": ("force",)}.get(action, ())
            mine, top = form_errors(exc, named)
            return _confirm(who, found, ACTIONS[action], form, mine, top, status=exc.status)
        return RedirectResponse(f"/provisions/{prov_id}?done={action}", status_code=303)


def _facts(found: dict[str, Any]) -> dict[str, Any]:
    """What a provision's page shows of it: facts, hosts, what it made, the actions."""
    made = found.get("made") or {}
    objects = []
    for kind, label, href in MADE_KINDS:
        value = made.get(kind)
        if kind == "cluster" and isinstance(value, int):
            objects.append({"kind": label, "name": "", "id": value, "href": f"{href}{value}"})
        elif isinstance(value, dict):
            for obj_name, obj_id in sorted(value.items(), key=lambda kv: str(kv[0])):
                link = f"{href}{obj_id}" if href else ""
                objects.append({"kind": label, "name": obj_name, "id": obj_id, "href": link})
    state = str(found["state_name"])
    return {
        "p": found,
        "objects": objects,
        "actions": [a for a in ACTIONS.values() if state in a.states],
        "final": state in FINAL,
    }


def _log(found: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The step log: each run of a step with the end of its log."""
    shown = []
    for step in steps:
        text = str(step.get("log") or "")
        cut = max(0, len(text) - LOG_TAIL)
        ended = step.get("ended_at")
        shown.append(
            {
                **step,
                "log": text[cut:],
                "cut": cut,
                "badge": STEP_CLASS.get(str(step["state"]), "busy"),
                "seconds": (int(ended) - int(step["started_at"])) if ended else None,
            }
        )
    state = str(found["state_name"])
    return {"p": found, "steps": shown, "final": state in FINAL, "state_name": state}


async def _ask(api: Api, prov_id: int, action: str, form: dict[str, str]) -> None:
    """Ask the API for the operation, with what the confirmation form gave."""
    if action == "delete":
        await api.delete(f"/provisions/{prov_id}", force="true" if form.get("force") else None)
    elif action == "scale":
        raw = form.get("hosts", "").strip()
        hosts: int | str = int(raw) if raw.isdigit() and len(raw) < 6 else raw
        await api.post(f"/provisions/{prov_id}/scale", {"hosts": hosts})
    else:
        await api.post(f"/provisions/{prov_id}/{action}")


def _confirm(
    who: Viewer,
    found: dict[str, Any],
    action: Action,
    form: dict[str, str],
    errors: dict[str, str],
    error: str,
    *,
    status: int = 200,
) -> Response:
    question = action.question.format(
        name=found["name"], operation=found["operation"], step=found["step"] or "(none)"
    )
    hosts = form.get("hosts", str(len(found.get("hosts") or []) or 1))
    return page(
        who,
        "provision_confirm.html",
        status=status,
        title=f"{action.label} provision {found['name']}",
        p=found,
        action=action.key,
        action_url=f"/provisions/{found['id']}/{action.key}",
        cancel_url=f"/provisions/{found['id']}",
        question=question,
        confirm_label=action.label,
        danger=action.danger,
        error=error,
        errors=errors,
        hosts=hosts,
        force=bool(form.get("force")),
    )
