"""One router per owned resource kind, built from its service: the same seven routes each.

GET /{kind} (list), POST /{kind}, GET/PATCH/DELETE /{kind}/{id}, POST /{kind}/{id}/chmod,
POST /{kind}/{id}/chown. Handlers are thin: parse, call the service in a unit of work,
return the wire type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from edgecloud.api.common import MAX_ID, Chmod, Chown, ErrorBody, Page
from edgecloud.server.auth.access import Principal
from edgecloud.server.rest.deps import FrontEnd, FrontEndDep, ListQueryDep, PrincipalDep
from edgecloud.server.services.objects import ListQuery
from edgecloud.server.services.resource import OwnedResource

IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422)
}


def typed(func: Callable[..., Any], **annotations: Any) -> Callable[..., Any]:
    """Give a generic handler the concrete body type FastAPI should parse and document."""
    sig = inspect.signature(func)
    params = [
        p.replace(annotation=annotations[p.name]) if p.name in annotations else p
        for p in sig.parameters.values()
    ]
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func


def no_filters() -> dict[str, Any]:
    """Return no resource-specific filters."""
    return {}


class CrudService(Protocol):
    """What the standard routes need of a service (OwnedResource, Users, Groups)."""

    @property
    def read_type(self) -> type[BaseModel]:
        """The wire type of one object."""

    def list(
        self, session: Session, principal: Principal, query: ListQuery, params: dict[str, Any]
    ) -> Any:
        """List one page."""

    def create(self, session: Session, principal: Principal, body: Any) -> Any:
        """Create one."""

    def get(self, session: Session, principal: Principal, obj_id: int) -> Any:
        """Show one."""

    def update(self, session: Session, principal: Principal, obj_id: int, body: Any) -> Any:
        """Change one."""

    def delete(self, session: Session, principal: Principal, obj_id: int) -> None:
        """Delete one."""


def crud_router(
    service: CrudService,
    *,
    path: str,
    create: type[BaseModel],
    update: type[BaseModel],
    filters: Callable[..., dict[str, Any]] | None = None,
    with_list: bool = True,
    after_write: Callable[[FrontEnd], None] | None = None,
    after_update: Callable[[FrontEnd, int], None] | None = None,
) -> APIRouter:
    """Build the standard routes of one resource kind."""
    read = service.read_type
    tag = path.strip("/")
    router = APIRouter(prefix=path, tags=[tag], responses=ERRORS)

    def do_list(
        frontend: FrontEndDep, principal: PrincipalDep, query: ListQueryDep, extra: Any
    ) -> Any:
        with frontend.store.read() as session:
            return service.list(session, principal, query, extra or {})

    def do_create(frontend: FrontEndDep, principal: PrincipalDep, body: Any) -> Any:
        with frontend.store.write() as session:
            out = service.create(session, principal, body)
        if after_write is not None:
            after_write(frontend)
        return out

    def do_get(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, response: Response
    ) -> Any:
        with frontend.store.read() as session:
            out = service.get(session, principal, obj_id)
        response.headers["ETag"] = f'"{out.version}"'
        return out

    def do_update(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: Any) -> Any:
        with frontend.store.write() as session:
            out = service.update(session, principal, obj_id, body)
        if after_write is not None:
            after_write(frontend)
        if after_update is not None:
            after_update(frontend, obj_id)
        return out

    def do_delete(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> Response:
        with frontend.store.write() as session:
            service.delete(session, principal, obj_id)
        if after_write is not None:
            after_write(frontend)
        return Response(status_code=204)

    if with_list:
        list_handler = typed(
            do_list, extra=Annotated[dict[str, Any], Depends(filters or no_filters)]
        )
        page_type: Any = Page[read]  # type: ignore[valid-type]
        router.add_api_route(
            "", list_handler, methods=["GET"], response_model=page_type, summary=f"List {tag}"
        )
    router.add_api_route(
        "",
        typed(do_create, body=create),
        methods=["POST"],
        response_model=read,
        status_code=201,
        summary=f"Create a {tag[:-1]}",
    )
    router.add_api_route(
        "/{obj_id}", do_get, methods=["GET"], response_model=read, summary="Show one"
    )
    router.add_api_route(
        "/{obj_id}",
        typed(do_update, body=update),
        methods=["PATCH"],
        response_model=read,
        summary="Update one",
    )
    router.add_api_route(
        "/{obj_id}", do_delete, methods=["DELETE"], status_code=204, summary="Delete one"
    )
    if isinstance(service, OwnedResource):
        _ownership_routes(router, service)
    return router


def _ownership_routes(router: APIRouter, service: OwnedResource[Any, Any, Any, Any]) -> None:
    """Add chmod and chown, which only owned objects have."""
    read = service.read_type

    @router.post("/{obj_id}/chmod", response_model=read, summary="Change permissions")
    def do_chmod(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: Chmod
    ) -> Any:
        with frontend.store.write() as session:
            return service.chmod(session, principal, obj_id, body)

    @router.post("/{obj_id}/chown", response_model=read, summary="Change owner or group")
    def do_chown(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: Chown
    ) -> Any:
        with frontend.store.write() as session:
            return service.chown(session, principal, obj_id, body)
