"""Image routes beyond CRUD: clone, and the upload of an image's bytes."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from edgecloud.api import workload as wire
from edgecloud.server.datastore.files import ImageFileError, NoSpace, Stored, store
from edgecloud.server.datastore.importer import finish, target_of
from edgecloud.server.db.models import Datastore, Image
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.rest.crud import IdPath
from edgecloud.server.rest.deps import FrontEndDep, PrincipalDep
from edgecloud.server.services.images import ERROR, LOCKED, Images

UPLOAD_PATH = "/{obj_id}/upload"


def add_image_routes(router: APIRouter, images: Images) -> None:
    """Add clone and upload to the images router."""

    @router.post(
        "/{obj_id}/clone", response_model=wire.Image, status_code=201, summary="Copy an image"
    )
    def clone(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.ImageClone
    ) -> Any:
        with frontend.store.write() as session:
            return images.clone(session, principal, obj_id, body)

    @router.put(
        UPLOAD_PATH,
        response_model=wire.Image,
        summary="Send the bytes of an image registered with upload=true",
        description="The request body is the image, raw (application/octet-stream); a gzip"
        " stream is decompressed. The image is READY when this answers, or ERROR with the"
        " reason (then upload again).",
    )
    async def upload(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, request: Request
    ) -> Any:
        target, declared, expected = await asyncio.to_thread(
            _begin, frontend, principal, images, obj_id
        )
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        writing = asyncio.create_task(asyncio.to_thread(_store, chunks, target, declared, expected))
        try:
            async for chunk in request.stream():
                if chunk:
                    if writing.done():
                        break  # it failed; its error is reported below
                    await asyncio.to_thread(chunks.put, chunk)
        finally:
            await asyncio.to_thread(chunks.put, None)
        outcome = await writing
        if isinstance(outcome, ImageFileError):
            await asyncio.to_thread(finish, frontend.store, obj_id, None, str(outcome))
            if isinstance(outcome, NoSpace):
                raise Conflict(str(outcome), field="datastore_id")
            raise InvalidInput("body", str(outcome))
        await asyncio.to_thread(finish, frontend.store, obj_id, outcome)
        return await asyncio.to_thread(_show, frontend, principal, images, obj_id)


def _begin(frontend: Any, principal: Any, images: Images, obj_id: int) -> tuple[Path, str, str]:
    """Check the image waits for an upload; return where its bytes go, the format asked
    for and the checksum they must have."""
    with frontend.store.write() as session:
        image: Image = images.load(session, principal, obj_id, "MANAGE")
        if image.origin != "upload":  # (a save-as is copied by its own request)
            raise Conflict(f"image {image.id} was not registered with upload=true", field="id")
        if image.state not in (LOCKED, ERROR):
            state = wire.IMAGE_STATES.get(image.state, str(image.state))
            raise Conflict(f"image {image.id} is {state}: its bytes are already there", field="id")
        image.state, image.last_error = LOCKED, ""
        ds = session.get(Datastore, image.datastore_id)
        assert ds is not None
        target = target_of(frontend.settings.home, ds, image.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, image.format, image.checksum


def _store(
    chunks: queue.Queue[bytes | None], target: Path, declared: str, expected: str
) -> Stored | ImageFileError:
    def read() -> Iterator[bytes]:
        while (chunk := chunks.get()) is not None:
            yield chunk

    source = read()
    try:
        return store(source, target, declared=declared, expected=expected)
    except ImageFileError as exc:
        return exc
    finally:
        for _ in source:  # drain, so the reader is never blocked on a full queue
            pass


def _show(frontend: Any, principal: Any, images: Images, obj_id: int) -> Any:
    with frontend.store.read() as session:
        return images.get(session, principal, obj_id)
