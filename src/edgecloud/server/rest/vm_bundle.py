"""Routes that export a VM to a bundle file and import one (see services.vm_bundle)."""

from __future__ import annotations

import asyncio
import tarfile
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from edgecloud.api import workload as wire
from edgecloud.api.common import Name
from edgecloud.server.errors import InvalidInput
from edgecloud.server.rest.crud import IdPath
from edgecloud.server.rest.deps import FrontEndDep, PrincipalDep
from edgecloud.server.services import vm_bundle
from edgecloud.server.services.images import Images
from edgecloud.server.services.vms import Vms

IMPORT_PATH = "/api/v1/vms/import"


def _scratch(frontend: Any) -> Path:
    directory = Path(frontend.settings.home) / "bundles"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{uuid.uuid4().hex}.tar"


def add_bundle_routes(router: APIRouter, vms: Vms, images: Images) -> None:
    """Add GET /vms/{id}/export and POST /vms/import."""

    @router.get(
        "/{obj_id}/export",
        summary="A powered-off VM as a bundle (tar: manifest.json and its disks)",
        response_class=FileResponse,
    )
    def export(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> FileResponse:
        with frontend.store.read() as session:
            plan = vm_bundle.plan_export(session, principal, obj_id)
        path = _scratch(frontend)
        vm_bundle.write_bundle(frontend.drivers, plan, path)
        return FileResponse(
            path,
            media_type="application/x-tar",
            filename=f"{plan.manifest['name']}.bundle.tar",
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    @router.post(
        "/import",
        response_model=wire.Vm,
        status_code=201,
        summary="Make a VM (and its images) from a bundle sent as the body",
    )
    async def import_bundle(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        request: Request,
        name: Annotated[Name | None, Query()] = None,
        datastore_id: Annotated[int, Query(ge=0)] = 1,
    ) -> Any:
        path = _scratch(frontend)
        try:
            with path.open("wb") as out:
                async for chunk in request.stream():
                    await asyncio.to_thread(out.write, chunk)
            return await asyncio.to_thread(
                _import, frontend, principal, vms, images, path, name, datastore_id
            )
        finally:
            path.unlink(missing_ok=True)


def _import(
    frontend: Any,
    principal: Any,
    vms: Vms,
    images: Images,
    path: Path,
    name: str | None,
    datastore_id: int,
) -> wire.Vm:
    if not tarfile.is_tarfile(path):
        raise InvalidInput("body", "not a bundle: the body is not a tar file")
    with tarfile.open(path, "r:") as tar:
        manifest = vm_bundle.read_manifest(tar)
        wanted = name or str(manifest.get("name") or "imported")
        with frontend.store.read() as session:
            base = vm_bundle.unused_name(session, principal, wanted)
        disks = vm_bundle.import_disks(
            frontend.store,
            principal,
            images,
            tar,
            manifest,
            name=base,
            datastore_id=datastore_id,
            home=Path(frontend.settings.home),
        )
    with frontend.store.write() as session:
        created = vms.create(session, principal, vm_bundle.vm_body(manifest, disks, wanted))
    frontend.wake()
    return created
