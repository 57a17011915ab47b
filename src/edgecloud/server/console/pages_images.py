"""Image pages: the list (paged, filtered), one image, and its deletion (confirmed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.api.common import MAX_ID
from edgecloud.api.workload import IMAGE_STATES
from edgecloud.server.console.api import ApiError
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form, viewer

ViewerDep = Annotated[Viewer, Depends(viewer)]
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]
PAGE_SIZE = 50
IMAGE_STATE_NUMBER = {name: num for num, name in IMAGE_STATES.items()}


def routes(router: APIRouter) -> None:
    """Add the image pages."""

    @router.get("/images")
    async def images(
        who: ViewerDep,
        cursor: IdQuery = None,
        name: Annotated[str, Query(max_length=128)] = "",
        state: Annotated[str, Query(max_length=32)] = "",
        datastore_id: IdQuery = None,
        deleted: IdQuery = None,
    ) -> Response:
        number = IMAGE_STATE_NUMBER.get(state.upper()) if state else None
        listing = await who.api.get(
            "/images",
            limit=PAGE_SIZE,
            cursor=cursor,
            name=name,
            state=number,
            datastore_id=datastore_id,
        )
        items = listing["items"]
        filters: dict[str, Any] = {
            "name": name,
            "state": state.upper() if number is not None else "",
            "datastore_id": datastore_id,
        }
        next_url = ""
        if listing.get("next_cursor") is not None:
            next_url = "/images" + query_string(**filters, cursor=listing["next_cursor"])
        ids = [i["datastore_id"] for i in items] + ([datastore_id] if datastore_id else [])
        return page(
            who,
            "images.html",
            title="Images",
            images=items,
            datastores=await names_of(who, "/datastores", ids),
            next_url=next_url,
            first_url="/images" + query_string(**filters) if cursor is not None else "",
            state_names=list(IMAGE_STATES.values()),
            notice=f"Image {deleted} deleted." if deleted is not None else "",
            **filters,
        )

    @router.get("/images/{image_id}")
    async def image(who: ViewerDep, image_id: IdPath) -> Response:
        found = await who.api.get(f"/images/{image_id}")
        datastores = await names_of(who, "/datastores", [found["datastore_id"]])
        return page(
            who,
            "image.html",
            title=f"Image {found['name']}",
            image=found,
            datastore_name=datastores.get(found["datastore_id"], ""),
        )

    @router.get("/images/{image_id}/delete")
    async def delete_form(who: ViewerDep, image_id: IdPath) -> Response:
        found = await who.api.get(f"/images/{image_id}")
        return _confirm(who, found)

    @router.post("/images/{image_id}/delete")
    async def delete(who: ViewerDep, image_id: IdPath, request: Request) -> Response:
        await checked_form(request, who)
        try:
            await who.api.delete(f"/images/{image_id}")
        except ApiError as exc:
            try:
                found = await who.api.get(f"/images/{image_id}")
            except ApiError:
                found = {"id": image_id, "name": str(image_id), "running_vms": 0}
            code = exc.status if 400 <= exc.status < 500 else 502
            return _confirm(who, found, error=exc.message, code=code)
        return RedirectResponse(f"/images?deleted={image_id}", status_code=303)


def _confirm(who: Viewer, image: dict[str, Any], *, error: str = "", code: int = 200) -> Response:
    used = int(image.get("running_vms") or 0)
    question = f"Delete image {image['name']} (id {image['id']}) and its bytes?"
    if used:
        question += f" It is used by {used} VM(s)."
    return page(
        who,
        "infra_confirm.html",
        status=code,
        title=f"Delete image {image['name']}",
        question=question,
        action_url=f"/images/{image['id']}/delete",
        cancel_url=f"/images/{image['id']}",
        confirm_label="Delete",
        danger=True,
        error=error,
        hidden={},
    )


async def names_of(who: Viewer, path: str, ids: Iterable[int]) -> dict[int, str]:
    """Return the names of the objects at `path/{id}` the viewer may see (others left out)."""

    async def one(obj_id: int) -> tuple[int, str] | None:
        try:
            obj = await who.api.get(f"{path}/{obj_id}")
        except ApiError:
            return None
        return obj_id, str(obj["name"])

    found = await asyncio.gather(*(one(i) for i in sorted(set(ids))))
    return dict(item for item in found if item is not None)


def query_string(**params: Any) -> str:
    """Return `?a=b&...` of the params that are set (empty when none is)."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""
