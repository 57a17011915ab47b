"""Networks and security groups: lists, details, address ranges (add, remove) and leases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import (
    MANY,
    PAGE_SIZE,
    Cursor,
    NamePrefix,
    ObjId,
    ViewerDep,
    form_errors,
    names_of,
)
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

Limit = Annotated[int, Query(ge=1, le=1000)]
AR_FIELDS = ("type", "ip", "size", "mac", "ip6", "global_prefix", "ula_prefix", "prefix_length")
AR_TYPES = ("IP4", "IP6", "IP6_STATIC", "IP4_6", "IP4_6_STATIC", "ETHER")
NOTICES = {
    "ar-added": "The address range was added.",
    "ar-removed": "The address range was removed.",
}


def notice_of(done: str) -> str:
    """Return the message of a finished action (only known ones: nothing is reflected)."""
    return NOTICES.get(done, "")


def may_admin(who: Viewer, obj: dict[str, Any]) -> bool:
    """Tell whether to offer admin forms on an object (a hint only: the API decides)."""
    perms = str(obj.get("permissions", "")).ljust(9, "-")
    return (
        who.is_admin
        or (obj.get("owner_id") == who.user["id"] and perms[2] == "a")
        or (obj.get("group_id") in who.user.get("group_ids", []) and perms[5] == "a")
        or perms[8] == "a"
    )


def _usage(vnet: dict[str, Any]) -> tuple[int, int]:
    ranges = vnet.get("address_ranges") or []
    return sum(int(r.get("used", 0)) for r in ranges), sum(int(r["size"]) for r in ranges)


def routes(router: APIRouter) -> None:
    """Add the network and security group pages."""

    @router.get("/networks")
    async def networks(
        who: ViewerDep, name: NamePrefix = "", cursor: Cursor = None, limit: Limit = PAGE_SIZE
    ) -> Response:
        answer = await who.api.get("/vnets", name=name, cursor=cursor, limit=limit)
        clusters = await names_of(who.api, "/clusters")
        rows = [(v, *_usage(v)) for v in answer["items"]]
        return page(
            who,
            "networks.html",
            title="Networks",
            rows=rows,
            clusters=clusters,
            name=name,
            limit=limit,
            cursor=cursor,
            next_cursor=answer.get("next_cursor"),
        )

    @router.get("/networks/{vnet_id}")
    async def network(who: ViewerDep, vnet_id: ObjId, done: str = "") -> Response:
        context = await _network(who, vnet_id)
        return page(who, "network.html", notice=notice_of(done), **context)

    @router.post("/networks/{vnet_id}/ars")
    async def add_range(request: Request, who: ViewerDep, vnet_id: ObjId) -> Response:
        form = await checked_form(request, who)
        values = {k: form.get(k, "").strip() for k in AR_FIELDS}
        body = {k: v for k, v in values.items() if v}
        try:
            await who.api.post(f"/vnets/{vnet_id}/ars", body)
        except ApiError as exc:
            errors, error = form_errors(exc, AR_FIELDS)
            context = await _network(who, vnet_id, ar_form=values, errors=errors, error=error)
            return page(who, "network.html", status=exc.status, **context)
        return RedirectResponse(f"/networks/{vnet_id}?done=ar-added", status_code=303)

    @router.get("/networks/{vnet_id}/ars/{ar_id}/remove")
    async def remove_range_form(who: ViewerDep, vnet_id: ObjId, ar_id: ObjId) -> Response:
        vnet = await who.api.get(f"/vnets/{vnet_id}")
        return _confirm_remove(who, vnet, ar_id, error="")

    @router.post("/networks/{vnet_id}/ars/{ar_id}/remove")
    async def remove_range(
        request: Request, who: ViewerDep, vnet_id: ObjId, ar_id: ObjId
    ) -> Response:
        await checked_form(request, who)
        try:
            await who.api.delete(f"/vnets/{vnet_id}/ars/{ar_id}")
        except ApiError as exc:
            vnet = await who.api.get(f"/vnets/{vnet_id}")
            return _confirm_remove(who, vnet, ar_id, error=exc.message, status=exc.status)
        return RedirectResponse(f"/networks/{vnet_id}?done=ar-removed", status_code=303)

    @router.get("/secgroups")
    async def secgroups(
        who: ViewerDep, name: NamePrefix = "", cursor: Cursor = None, limit: Limit = PAGE_SIZE
    ) -> Response:
        answer = await who.api.get("/secgroups", name=name, cursor=cursor, limit=limit)
        return page(
            who,
            "secgroups.html",
            title="Security groups",
            groups=answer["items"],
            name=name,
            limit=limit,
            cursor=cursor,
            next_cursor=answer.get("next_cursor"),
        )

    @router.get("/secgroups/{group_id}")
    async def secgroup(who: ViewerDep, group_id: ObjId) -> Response:
        group = await who.api.get(f"/secgroups/{group_id}")
        answer = await who.api.get("/vnets", limit=MANY)
        vnets = [
            (v, *_usage(v)) for v in answer["items"] if group_id in v.get("security_groups", [])
        ]
        return page(
            who,
            "secgroup.html",
            title=f"Security group {group['name']}",
            group=group,
            vnets=vnets,
            more_vnets=answer.get("next_cursor") is not None,
        )


async def _network(
    who: Viewer,
    vnet_id: int,
    *,
    ar_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
) -> dict[str, Any]:
    """Everything the network page shows: the vnet, its leases, clusters and groups."""
    vnet = await who.api.get(f"/vnets/{vnet_id}")
    leases = await who.api.get(f"/vnets/{vnet_id}/leases")
    clusters = await names_of(who.api, "/clusters")
    groups: list[tuple[int, str | None]] = []
    for group_id in vnet.get("security_groups", []):
        try:
            groups.append((group_id, (await who.api.get(f"/secgroups/{group_id}"))["name"]))
        except ApiError:
            groups.append((group_id, None))  # exists, but this viewer may not see it
    used, size = _usage(vnet)
    return {
        "title": f"Network {vnet['name']}",
        "vnet": vnet,
        "leases": leases,
        "clusters": clusters,
        "secgroups": groups,
        "used": used,
        "size": size,
        "may_admin": may_admin(who, vnet),
        "ar_form": ar_form or {"type": "IP4"},
        "ar_types": [(t, t) for t in AR_TYPES],
        "errors": errors or {},
        "error": error,
    }


def _confirm_remove(
    who: Viewer, vnet: dict[str, Any], ar_id: int, *, error: str, status: int = 200
) -> Response:
    return page(
        who,
        "confirm.html",
        status=status,
        title=f"Remove address range {ar_id}",
        question=(
            f"Remove address range {ar_id} from network {vnet['name']}? "
            "Its addresses can no longer be leased."
        ),
        action_url=f"/networks/{vnet['id']}/ars/{ar_id}/remove",
        cancel_url=f"/networks/{vnet['id']}",
        confirm_label="Remove the range",
        danger=True,
        error=error,
    )
