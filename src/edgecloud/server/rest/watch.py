"""REST routes for watching the cloud: the event stream (SSE), a summary, Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from edgecloud.api.common import MAX_ID
from edgecloud.api.infra import Summary
from edgecloud.server.auth.access import ObjectRef, Principal
from edgecloud.server.events import Event
from edgecloud.server.rest.crud import ERRORS
from edgecloud.server.rest.deps import FrontEndDep, PrincipalDep
from edgecloud.server.services.summary import summary as services_summary

KEEPALIVE_SECONDS = 15.0
KIND_RESOURCE = {"vm": "VM", "host": "HOST", "provision": "PROVISION"}


def routers() -> list[APIRouter]:
    """Return the routers of this module."""
    router = APIRouter(tags=["watch"], responses=ERRORS)

    @router.get(
        "/events",
        summary="Stream state changes (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(
        request: Request,
        frontend: FrontEndDep,
        principal: PrincipalDep,
        kind: Literal["vm", "host", "operation", "provision"] | None = None,
        obj_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
        owner_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
        once: Annotated[bool, Query(description="end after the first matching event")] = False,
    ) -> StreamingResponse:
        queue = frontend.events.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if _wanted(event, principal, kind, obj_id, owner_id):
                        yield _format(event)
                        if once:
                            return
            finally:
                frontend.events.unsubscribe(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.get("/summary", response_model=Summary, summary="Counts and capacity at a glance")
    def summary(frontend: FrontEndDep, principal: PrincipalDep) -> Summary:
        with frontend.store.read() as session:
            return Summary.model_validate(services_summary(session, principal))

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(frontend: FrontEndDep, principal: PrincipalDep) -> Response:
        body = frontend.metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return [router]


def _wanted(
    event: Event, principal: Principal, kind: str | None, obj_id: int | None, owner_id: int | None
) -> bool:
    if kind is not None and event.kind != kind:
        return False
    if obj_id is not None and event.obj_id != obj_id:
        return False
    if owner_id is not None and event.owner_id != owner_id:
        return False
    return _visible(event, principal)


def _visible(event: Event, principal: Principal) -> bool:
    if principal.is_admin:
        return True
    if event.kind == "operation" or event.owner_id is None:
        return False
    perms = int(str(event.data.get("perms", 0o600)))
    ref = ObjectRef(event.obj_id, event.owner_id, event.group_id or -1, perms)
    return principal.can("USE", KIND_RESOURCE.get(event.kind, "VM"), ref)


def _format(event: Event) -> str:
    payload = {
        "kind": event.kind,
        "id": event.obj_id,
        "owner_id": event.owner_id,
        "at": event.at,
        **event.data,
    }
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(payload)}\n\n"
