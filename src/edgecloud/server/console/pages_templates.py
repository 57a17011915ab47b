"""VM template pages: the list (paged, by name), one template, its permissions, its deletion."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    Cursor,
    NamePrefix,
    ObjId,
    OptionalId,
    ViewerDep,
    form_errors,
    names_of,
    page_links,
)
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

SHAPE = ("CPU", "VCPU", "MEMORY", "HYPERVISOR")
WHO = ("Owner", "Group", "Others")
RIGHTS = ("Use", "Manage", "Admin")
CHMOD_FIELDS = ("permissions",)


def perm_grid(permissions: str) -> list[tuple[str, list[bool]]]:
    """The nine permission bits as rows (owner, group, others) of (use, manage, admin)."""
    bits = str(permissions).ljust(9, "-")[:9]
    return [(who, [bits[row * 3 + col] != "-" for col in range(3)]) for row, who in enumerate(WHO)]


def may_manage(who: Viewer, obj: dict[str, Any]) -> bool:
    """Tell whether to offer the manage forms (a hint only: the API decides)."""
    bits = str(obj.get("permissions", "")).ljust(9, "-")
    return (
        who.is_admin
        or (obj.get("owner_id") == who.user["id"] and bits[1] != "-")
        or (obj.get("group_id") in who.user.get("group_ids", []) and bits[4] != "-")
        or bits[7] != "-"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def attribute_rows(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The attributes to show: plain values, vectors (DISK, CONTEXT) and lists of them."""
    rows: list[dict[str, Any]] = []
    for key in sorted(template):
        value = template[key]
        if isinstance(value, dict):
            pairs = [(k, _text(v)) for k, v in sorted(value.items())]
            rows.append({"key": key, "kind": "vector", "pairs": pairs})
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = sorted({k for v in value for k in v})
            table = [[_text(v[c]) if c in v else "" for c in columns] for v in value]
            rows.append({"key": key, "kind": "table", "columns": columns, "rows": table})
        elif isinstance(value, list):
            rows.append({"key": key, "kind": "list", "entries": [_text(v) for v in value]})
        else:
            rows.append({"key": key, "kind": "text", "text": _text(value)})
    return rows


def routes(router: APIRouter) -> None:
    """Add the VM template pages."""

    @router.get("/templates")
    async def templates(
        who: ViewerDep, name: NamePrefix = "", cursor: Cursor = None, deleted: OptionalId = None
    ) -> Response:
        listing = await who.api.get("/templates", limit=PAGE_SIZE, cursor=cursor, name=name)
        items = listing["items"]
        owners = await names_of(who.api, "/users", [t["owner_id"] for t in items])
        return page(
            who,
            "vm_templates.html",
            title="VM templates",
            templates=items,
            owners=owners,
            shape=SHAPE,
            name=name,
            notice=f"Template {deleted} deleted." if deleted is not None else "",
            **page_links("/templates", {"name": name}, cursor, listing.get("next_cursor")),
        )

    @router.get("/templates/{template_id}")
    async def template(who: ViewerDep, template_id: ObjId, done: str = "") -> Response:
        context = await _template(who, template_id)
        notice = "The permissions were changed." if done == "chmod" else ""
        return page(who, "vm_template.html", notice=notice, **context)

    @router.post("/templates/{template_id}/chmod")
    async def chmod(request: Request, who: ViewerDep, template_id: ObjId) -> Response:
        form = await checked_form(request, who)
        value = form.get("permissions", "").strip()
        try:
            await who.api.post(f"/templates/{template_id}/chmod", {"permissions": value})
        except ApiError as exc:
            errors, error = form_errors(exc, CHMOD_FIELDS)
            if not errors and not error:
                error = exc.message
            context = await _template(
                who, template_id, permissions=value, errors=errors, error=error
            )
            return page(who, "vm_template.html", status=exc.status, **context)
        return RedirectResponse(f"/templates/{template_id}?done=chmod", status_code=303)

    @router.get("/templates/{template_id}/delete")
    async def delete_form(who: ViewerDep, template_id: ObjId) -> Response:
        found = await who.api.get(f"/templates/{template_id}")
        return _confirm(who, found)

    @router.post("/templates/{template_id}/delete")
    async def delete(request: Request, who: ViewerDep, template_id: ObjId) -> Response:
        await checked_form(request, who)
        try:
            await who.api.delete(f"/templates/{template_id}")
        except ApiError as exc:
            try:
                found = await who.api.get(f"/templates/{template_id}")
            except ApiError:
                found = {"id": template_id, "name": f"template {template_id}"}
            return _confirm(who, found, error=exc.message, status=exc.status)
        return RedirectResponse(f"/templates?deleted={template_id}", status_code=303)


async def _template(
    who: Viewer,
    template_id: int,
    *,
    permissions: str | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
) -> dict[str, Any]:
    """Everything the template page shows: the template, its owner's names, the chmod form."""
    found = await who.api.get(f"/templates/{template_id}")
    owners, groups = await asyncio.gather(
        names_of(who.api, "/users", [found["owner_id"]]),
        names_of(who.api, "/groups", [found["group_id"]]),
    )
    attrs = found.get("template") or {}
    return {
        "title": f"Template {found['name']}",
        "tpl": found,
        "owner_name": owners.get(found["owner_id"], ""),
        "group_name": groups.get(found["group_id"], ""),
        "shape": [(k, attrs[k]) for k in SHAPE if k in attrs],
        "attributes": attribute_rows(attrs),
        "grid": perm_grid(found["permissions"]),
        "rights": RIGHTS,
        "may_manage": may_manage(who, found),
        "permissions": found["permissions"] if permissions is None else permissions,
        "errors": errors or {},
        "error": error,
    }


def _confirm(who: Viewer, found: dict[str, Any], *, error: str = "", status: int = 200) -> Response:
    return page(
        who,
        "confirm.html",
        status=status,
        title=f"Delete template {found['name']}",
        question=(
            f"Delete VM template {found['name']} (id {found['id']})? "
            "VMs already created from it are not changed."
        ),
        action_url=f"/templates/{found['id']}/delete",
        cancel_url=f"/templates/{found['id']}",
        confirm_label="Delete",
        danger=True,
        error=error,
    )
