"""REST routes of provisions: create from a template, operations, show with the step log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from edgecloud.api import provision as wire
from edgecloud.api.common import Page
from edgecloud.server.errors import ApiError
from edgecloud.server.rest.crud import ERRORS, IdPath
from edgecloud.server.rest.deps import FrontEnd, FrontEndDep, ListQueryDep, PrincipalDep
from edgecloud.server.services import provisions
from edgecloud.server.services.provisions import Provisions


class Unavailable(ApiError):
    """The front-end runs without its background loops: nothing would carry the work out."""

    status = 409
    code = "unavailable"


def _service(frontend: FrontEnd) -> Provisions:
    return Provisions(frontend.settings.home)


def _wake(frontend: FrontEnd) -> None:
    if frontend.background is None:
        raise Unavailable("this front-end runs no background loops: provisions cannot run")
    frontend.background.provisioner.wake()


def routers() -> list[APIRouter]:
    """Return the router of provisions."""
    router = APIRouter(prefix="/provisions", tags=["provisions"], responses=ERRORS)

    @router.get("", response_model=Page[wire.Provision], summary="List provisions")
    def list_provisions(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        query: ListQueryDep,
        state: Annotated[int | None, Query(ge=0, le=6)] = None,
        all: Annotated[bool, Query(description="include DONE (deleted) ones")] = False,
    ) -> Page[wire.Provision]:
        with frontend.store.read() as session:
            return _service(frontend).list(session, principal, query, {"state": state, "all": all})

    @router.post("", response_model=wire.Provision, status_code=202, summary="Create a provision")
    def create_provision(
        frontend: FrontEndDep, principal: PrincipalDep, body: wire.ProvisionCreate
    ) -> wire.Provision:
        if frontend.background is None:
            _wake(frontend)
        with frontend.store.write() as session:
            created = _service(frontend).create(session, principal, body)
        _wake(frontend)
        return created

    @router.post("/validate", response_model=wire.ProvisionResolved, summary="Check a template")
    def validate_provision(
        frontend: FrontEndDep, principal: PrincipalDep, body: wire.ProvisionValidate
    ) -> wire.ProvisionResolved:
        return provisions.validate(body)

    @router.post(
        "/inputs",
        response_model=list[wire.ProvisionInputInfo],
        summary="List the inputs a template declares",
        description=(
            "Read only the template's YAML and its `inputs` section (refused with their "
            "field errors if either cannot be read): what a form asks for before `validate` "
            "checks the whole template with the values given."
        ),
    )
    def provision_inputs(
        frontend: FrontEndDep, principal: PrincipalDep, body: wire.ProvisionSource
    ) -> list[wire.ProvisionInputInfo]:
        return provisions.input_info(provisions.declared_inputs(provisions.source_of(body)))

    @router.get("/{obj_id}", response_model=wire.Provision, summary="Show a provision")
    def get_provision(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> wire.Provision:
        with frontend.store.read() as session:
            return _service(frontend).get(session, principal, obj_id)

    @router.get("/{obj_id}/log", response_model=list[wire.ProvisionStepLog], summary="Step logs")
    def provision_log(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> list[wire.ProvisionStepLog]:
        with frontend.store.read() as session:
            return _service(frontend).log(session, principal, obj_id)

    def _request(
        frontend: FrontEnd, principal: Any, obj_id: int, operation: str, params: dict[str, Any]
    ) -> wire.Provision:
        if frontend.background is None:
            _wake(frontend)
        with frontend.store.write() as session:
            changed = _service(frontend).request(session, principal, obj_id, operation, params)
        _wake(frontend)
        return changed

    @router.post(
        "/{obj_id}/scale", response_model=wire.Provision, status_code=202, summary="Scale hosts"
    )
    def scale_provision(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.ProvisionScale
    ) -> wire.Provision:
        return _request(frontend, principal, obj_id, "scale", {"hosts": body.hosts})

    @router.post(
        "/{obj_id}/configure",
        response_model=wire.Provision,
        status_code=202,
        summary="Run host configuration again",
    )
    def configure_provision(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> wire.Provision:
        return _request(frontend, principal, obj_id, "configure", {})

    @router.post(
        "/{obj_id}/retry",
        response_model=wire.Provision,
        status_code=202,
        summary="Resume a failed operation at its failed step",
    )
    def retry_provision(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath
    ) -> wire.Provision:
        return _request(frontend, principal, obj_id, "retry", {})

    @router.delete(
        "/{obj_id}",
        response_model=wire.Provision,
        status_code=202,
        summary="Delete a provision: its objects here, then everything at the provider",
    )
    def delete_provision(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        obj_id: IdPath,
        force: Annotated[
            bool, Query(description="terminate its VMs; go on past objects that refuse")
        ] = False,
    ) -> wire.Provision:
        return _request(frontend, principal, obj_id, "delete", {"force": force})

    return [router]
