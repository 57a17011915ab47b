"""What the page modules share: parameter types, paging links, names of related objects,
and the API's refusals split between a form's fields and the top of the form."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Path, Query

from edgecloud.api.common import MAX_ID
from edgecloud.server.console.api import Api, ApiError
from edgecloud.server.console.session import Viewer, viewer

ViewerDep = Annotated[Viewer, Depends(viewer)]
ObjId = Annotated[int, Path(ge=0, le=MAX_ID)]
OptionalId = Annotated[int | None, Query(ge=0, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID)]
NamePrefix = Annotated[str, Query(max_length=128)]
PAGE_SIZE = 50
MANY = 1000  # how many objects to list when only their names are needed
BY_ID = 20  # up to this many names are asked for one by one, more by one listing


def query_string(**params: Any) -> str:
    """Return `?a=b&...` of the params that are set (empty when none is)."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


def page_links(
    path: str, filters: dict[str, Any], cursor: int | None, next_cursor: int | None
) -> dict[str, Any]:
    """The pager's links of a list page: the first page (when not on it) and the next one."""
    return {
        "first_url": path + query_string(**filters) if cursor is not None else "",
        "next_url": (
            path + query_string(**filters, cursor=next_cursor) if next_cursor is not None else ""
        ),
    }


async def names_of(api: Api, path: str, ids: Iterable[int] | None = None) -> dict[int, str]:
    """Map ids to names of the objects at `path` the viewer may see (the others left out).

    With `ids`, a few are asked for one by one; otherwise (or for many) one listing.
    """
    wanted = None if ids is None else sorted(set(ids))
    if wanted is not None and len(wanted) <= BY_ID:

        async def one(obj_id: int) -> tuple[int, str] | None:
            try:
                obj = await api.get(f"{path}/{obj_id}")
            except ApiError:
                return None
            return obj_id, str(obj["name"])

        found = await asyncio.gather(*(one(i) for i in wanted))
        return dict(item for item in found if item is not None)
    try:
        answer = await api.get(path, limit=MANY)
    except ApiError:
        return {}
    names = {int(item["id"]): str(item["name"]) for item in answer["items"]}
    return names if wanted is None else {i: names[i] for i in wanted if i in names}


def form_errors(exc: ApiError, fields: Iterable[str]) -> tuple[dict[str, str], str]:
    """Split the API's refusal into errors next to the form's fields and one on top.

    A reason naming a field of the form (by its last path part: `template.MEMORY` is
    `MEMORY`) goes next to it; anything else (a field the form does not have, or no field
    at all) is the message on top.
    """
    fields = tuple(fields)
    reasons: dict[str, str] = {}
    for item in exc.fields:
        path, reason = str(item.get("field", "")), str(item.get("reason", ""))
        # A service's message starts with the field's path ("ar.ip: not an IPv4 address").
        reason = reason.removeprefix(f"{path}: ")
        reasons.setdefault(path.rsplit(".", 1)[-1], reason)
    inline = {name: reasons[name] for name in fields if name in reasons}
    named = {str(item.get("field", "")).rsplit(".", 1)[-1] for item in exc.fields}
    if inline and named <= set(fields):
        return inline, ""
    return inline, exc.message
