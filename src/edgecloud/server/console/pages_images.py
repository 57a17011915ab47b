"""Image pages: the list (paged, filtered), one image, and its deletion (confirmed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.api.workload import IMAGE_STATES
from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    ObjId,
    OptionalId,
    ViewerDep,
    names_of,
    page_links,
)
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

IMAGE_STATE_NUMBER = {name: num for num, name in IMAGE_STATES.items()}


def routes(router: APIRouter) -> None:
    """Add the image pages."""

    @router.get("/images")
    async def images(
        who: ViewerDep,
        cursor: OptionalId = None,
        name: Annotated[str, Query(max_length=128)] = "",
        state: Annotated[str, Query(max_length=32)] = "",
        datastore_id: OptionalId = None,
        deleted: OptionalId = None,
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
        ids = [i["datastore_id"] for i in items] + ([datastore_id] if datastore_id else [])
        return page(
            who,
            "images.html",
            title="Images",
            images=items,
            datastores=await names_of(who.api, "/datastores", ids),
            **page_links("/images", filters, cursor, listing.get("next_cursor")),
            state_names=list(IMAGE_STATES.values()),
            notice=f"Image {deleted} deleted." if deleted is not None else "",
            **filters,
        )

    @router.get("/images/{image_id}")
    async def image(who: ViewerDep, image_id: ObjId) -> Response:
        found = await who.api.get(f"/images/{image_id}")
        datastores = await names_of(who.api, "/datastores", [found["datastore_id"]])
        return page(
            who,
            "image.html",
            title=f"Image {found['name']}",
            image=found,
            datastore_name=datastores.get(found["datastore_id"], ""),
        )

    @router.get("/images/{image_id}/delete")
    async def delete_form(who: ViewerDep, image_id: ObjId) -> Response:
        found = await who.api.get(f"/images/{image_id}")
        return _confirm(who, found)

    @router.post("/images/{image_id}/delete")
    async def delete(who: ViewerDep, image_id: ObjId, request: Request) -> Response:
        await checked_form(request, who)
        try:
            await who.api.delete(f"/images/{image_id}")
        except ApiError as exc:
            try:
                found = await who.api.get(f"/images/{image_id}")
            except ApiError:
                found = {"id": image_id, "name": str(image_id), "running_vms": 0}
            return _confirm(who, found, error=exc.message, code=exc.status)
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
