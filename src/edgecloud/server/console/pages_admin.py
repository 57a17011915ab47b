"""Users and groups: lists, details, creation, membership, passwords and quotas.

The console shows these pages to whoever asks and lets the API decide: a non-admin sees
what the API lists for them (themselves, their groups) and gets the API's refusal for
anything else (another user: 404; creating or changing: 403).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    Cursor,
    NamePrefix,
    ObjId,
    ViewerDep,
    form_errors,
    names_of,
)
from edgecloud.server.console.pages_network import Limit
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

USER_FIELDS = ("name", "password", "group_id")
USERS_GROUP_ID = 1
QUOTA_ROWS = (
    ("vms", "VMs", ""),
    ("cpu", "CPU", ""),
    ("memory_mb", "Memory", "mib"),
    ("system_disk_mb", "System disks", "mib"),
    ("images", "Images", ""),
    ("leases", "Leases", ""),
)
NOTICES = {
    "created": "The user was created.",
    "group-created": "The group was created.",
    "password": "The password was changed; the user's sessions were ended.",
    "joined": "The user was added to the group.",
    "left": "The user was removed from the group.",
    "enabled": "The user was enabled.",
    "disabled": "The user was disabled.",
}


def routes(router: APIRouter) -> None:
    """Add the user and group pages."""
    _user_routes(router)
    _group_routes(router)


def _user_routes(router: APIRouter) -> None:
    @router.get("/users")
    async def users(
        who: ViewerDep, name: NamePrefix = "", cursor: Cursor = None, limit: Limit = PAGE_SIZE
    ) -> Response:
        answer = await who.api.get("/users", name=name, cursor=cursor, limit=limit)
        groups = await names_of(who.api, "/groups")
        return page(
            who,
            "users.html",
            title="Users",
            users=answer["items"],
            groups=groups,
            name=name,
            limit=limit,
            cursor=cursor,
            next_cursor=answer.get("next_cursor"),
        )

    @router.get("/users/new")
    async def new_user(who: ViewerDep) -> Response:
        return await _new_user_page(who, {"group_id": str(USERS_GROUP_ID)})

    @router.post("/users/new")
    async def create_user(request: Request, who: ViewerDep) -> Response:
        form = await checked_form(request, who)
        values = {k: form.get(k, "") for k in USER_FIELDS}
        values["name"] = values["name"].strip()
        body: dict[str, Any] = {"name": values["name"], "password": values["password"]}
        if values["group_id"]:
            body["group_id"] = values["group_id"]
        try:
            user = await who.api.post("/users", body)
        except ApiError as exc:
            errors, error = form_errors(exc, USER_FIELDS)
            values["password"] = ""  # never sent back to the browser
            return await _new_user_page(who, values, errors, error, status=exc.status)
        return RedirectResponse(f"/users/{user['id']}?done=created", status_code=303)

    @router.get("/users/{user_id}")
    async def user(who: ViewerDep, user_id: ObjId, done: str = "") -> Response:
        return await _user_page(who, user_id, notice=NOTICES.get(done, ""))

    @router.post("/users/{user_id}/password")
    async def set_password(request: Request, who: ViewerDep, user_id: ObjId) -> Response:
        form = await checked_form(request, who)
        try:
            await who.api.post(f"/users/{user_id}/password", {"password": form.get("password", "")})
        except ApiError as exc:
            errors, error = form_errors(exc, ("password",))
            return await _user_page(
                who, user_id, errors=errors, error=error, error_form="password", status=exc.status
            )
        if user_id == who.user["id"]:
            # The API ended every session of the user, this one too: log in again.
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(f"/users/{user_id}?done=password", status_code=303)

    @router.post("/users/{user_id}/groups")
    async def add_group(request: Request, who: ViewerDep, user_id: ObjId) -> Response:
        form = await checked_form(request, who)
        group_id = form.get("group_id", "")
        try:
            await who.api.post(f"/users/{user_id}/groups", {"group_id": group_id})
        except ApiError as exc:
            errors, error = form_errors(exc, ("group_id",))
            return await _user_page(
                who, user_id, errors=errors, error=error, error_form="groups", status=exc.status
            )
        return RedirectResponse(f"/users/{user_id}?done=joined", status_code=303)

    @router.get("/users/{user_id}/groups/{group_id}/remove")
    async def remove_group_form(who: ViewerDep, user_id: ObjId, group_id: ObjId) -> Response:
        target = await who.api.get(f"/users/{user_id}")
        return await _confirm_leave(who, target, group_id, error="")

    @router.post("/users/{user_id}/groups/{group_id}/remove")
    async def remove_group(
        request: Request, who: ViewerDep, user_id: ObjId, group_id: ObjId
    ) -> Response:
        await checked_form(request, who)
        try:
            await who.api.delete(f"/users/{user_id}/groups/{group_id}")
        except ApiError as exc:
            target = await who.api.get(f"/users/{user_id}")
            return await _confirm_leave(who, target, group_id, error=exc.message, status=exc.status)
        return RedirectResponse(f"/users/{user_id}?done=left", status_code=303)

    @router.post("/users/{user_id}/enabled")
    async def set_enabled(request: Request, who: ViewerDep, user_id: ObjId) -> Response:
        form = await checked_form(request, who)
        enabled = form.get("enabled") == "true"
        try:
            await who.api.request("PATCH", f"/users/{user_id}", json={"enabled": enabled})
        except ApiError as exc:
            return await _user_page(
                who, user_id, error=exc.message, error_form="enabled", status=exc.status
            )
        done = "enabled" if enabled else "disabled"
        return RedirectResponse(f"/users/{user_id}?done={done}", status_code=303)


def _group_routes(router: APIRouter) -> None:
    @router.get("/groups")
    async def groups(
        who: ViewerDep,
        name: NamePrefix = "",
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE,
        done: str = "",
    ) -> Response:
        return await _groups_page(who, name, cursor, limit, notice=NOTICES.get(done, ""))

    @router.post("/groups")
    async def create_group(request: Request, who: ViewerDep) -> Response:
        form = await checked_form(request, who)
        group_name = form.get("name", "").strip()
        try:
            group = await who.api.post("/groups", {"name": group_name})
        except ApiError as exc:
            errors, error = form_errors(exc, ("name",))
            return await _groups_page(
                who,
                "",
                None,
                PAGE_SIZE,
                new_name=group_name,
                errors=errors,
                error=error,
                status=exc.status,
            )
        return RedirectResponse(f"/groups/{group['id']}?done=group-created", status_code=303)

    @router.get("/groups/{group_id}")
    async def group(who: ViewerDep, group_id: ObjId, done: str = "") -> Response:
        found = await who.api.get(f"/groups/{group_id}")
        quota = await _quota(who, f"/groups/{group_id}/quota")
        users = await names_of(who.api, "/users")
        return page(
            who,
            "group.html",
            title=f"Group {found['name']}",
            notice=NOTICES.get(done, ""),
            group=found,
            users=users,
            quota=quota,
            quota_rows=QUOTA_ROWS,
        )


async def _quota(who: Viewer, path: str) -> dict[str, Any] | None:
    """Return limits and usage, or None if the API will not show them."""
    try:
        quota: dict[str, Any] = await who.api.get(path)
    except ApiError:
        return None
    return quota


async def _new_user_page(
    who: Viewer,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    error: str = "",
    *,
    status: int = 200,
) -> Response:
    groups = await names_of(who.api, "/groups")
    return page(
        who,
        "user_new.html",
        status=status,
        title="New user",
        form=values,
        group_options=sorted(groups.items()),
        errors=errors or {},
        error=error,
    )


async def _user_page(
    who: Viewer,
    user_id: int,
    *,
    notice: str = "",
    errors: dict[str, str] | None = None,
    error: str = "",
    error_form: str = "",
    status: int = 200,
) -> Response:
    target = await who.api.get(f"/users/{user_id}")
    groups = await names_of(who.api, "/groups")
    quota = await _quota(who, f"/users/{user_id}/quota")
    joinable = sorted((g, n) for g, n in groups.items() if g not in target["group_ids"])
    return page(
        who,
        "user.html",
        status=status,
        title=f"User {target['name']}",
        notice=notice,
        target=target,
        groups=groups,
        joinable=joinable,
        quota=quota,
        quota_rows=QUOTA_ROWS,
        errors=errors or {},
        error=error,
        error_form=error_form,
    )


async def _confirm_leave(
    who: Viewer, target: dict[str, Any], group_id: int, *, error: str, status: int = 200
) -> Response:
    groups = await names_of(who.api, "/groups")
    label = f"group {groups[group_id]} ({group_id})" if group_id in groups else f"group {group_id}"
    return page(
        who,
        "confirm.html",
        status=status,
        title=f"Remove {target['name']} from a group",
        question=f"Remove user {target['name']} from {label}?",
        action_url=f"/users/{target['id']}/groups/{group_id}/remove",
        cancel_url=f"/users/{target['id']}",
        confirm_label="Remove from the group",
        danger=True,
        error=error,
    )


async def _groups_page(
    who: Viewer,
    name: str,
    cursor: int | None,
    limit: int,
    *,
    notice: str = "",
    new_name: str = "",
    errors: dict[str, str] | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    answer = await who.api.get("/groups", name=name, cursor=cursor, limit=limit)
    return page(
        who,
        "groups.html",
        status=status,
        title="Groups",
        notice=notice,
        groups=answer["items"],
        name=name,
        limit=limit,
        cursor=cursor,
        next_cursor=answer.get("next_cursor"),
        new_name=new_name,
        errors=errors or {},
        error=error,
    )
