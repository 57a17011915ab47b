"""Datastore pages: the list (paged, by name and kind) and one datastore with its images."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from edgecloud.server.console.common import (
    PAGE_SIZE,
    Cursor,
    NamePrefix,
    ObjId,
    ViewerDep,
    names_of,
    page_links,
)
from edgecloud.server.console.pages_templates import attribute_rows
from edgecloud.server.console.render import page

KINDS = ("image", "system", "file")
KindFilter = Annotated[Literal["", "image", "system", "file"], Query()]
IMAGES_SHOWN = 20


def routes(router: APIRouter) -> None:
    """Add the datastore pages."""

    @router.get("/datastores")
    async def datastores(
        who: ViewerDep, name: NamePrefix = "", kind: KindFilter = "", cursor: Cursor = None
    ) -> Response:
        listing = await who.api.get(
            "/datastores", limit=PAGE_SIZE, cursor=cursor, name=name, kind=kind
        )
        items = listing["items"]
        clusters = await names_of(
            who.api, "/clusters", [c for d in items for c in d["cluster_ids"]]
        )
        filters: dict[str, Any] = {"name": name, "kind": kind}
        return page(
            who,
            "datastores.html",
            title="Datastores",
            datastores=items,
            clusters=clusters,
            kinds=KINDS,
            **filters,
            **page_links("/datastores", filters, cursor, listing.get("next_cursor")),
        )

    @router.get("/datastores/{datastore_id}")
    async def datastore(who: ViewerDep, datastore_id: ObjId) -> Response:
        found = await who.api.get(f"/datastores/{datastore_id}")
        clusters, images, owners, groups = await asyncio.gather(
            names_of(who.api, "/clusters", found["cluster_ids"]),
            who.api.get("/images", datastore_id=datastore_id, limit=IMAGES_SHOWN),
            names_of(who.api, "/users", [found["owner_id"]]),
            names_of(who.api, "/groups", [found["group_id"]]),
        )
        return page(
            who,
            "datastore.html",
            title=f"Datastore {found['name']}",
            ds=found,
            clusters=clusters,
            images=images["items"],
            more_images=images.get("next_cursor") is not None,
            owner_name=owners.get(found["owner_id"], ""),
            group_name=groups.get(found["group_id"], ""),
            attributes=attribute_rows(found.get("template") or {}),
        )
