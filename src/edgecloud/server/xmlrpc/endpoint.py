"""`POST /RPC2`: OpenNebula's XML-RPC endpoint on the front-end's own port."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from edgecloud.server.rest.deps import FrontEndDep
from edgecloud.server.xmlrpc import core, methods

PATH = "/RPC2"


def routers() -> list[APIRouter]:
    """Return the XML-RPC router (the session string authenticates each call)."""
    methods.load()
    router = APIRouter(tags=["xml-rpc"])

    @router.post(PATH, include_in_schema=False)
    async def rpc2(request: Request, frontend: FrontEndDep) -> Response:
        body = await request.body()
        answer = await run_in_threadpool(core.handle, frontend, body)
        return Response(answer, media_type="text/xml")

    return [router]
