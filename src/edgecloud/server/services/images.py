"""Images: disk image records in image datastores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.datastore.files import remove
from edgecloud.server.datastore.importer import target_of
from edgecloud.server.datastore.importer import wake as importer_wake
from edgecloud.server.db.models import Datastore, Image
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services import quotas
from edgecloud.server.services.objects import load, parse_template_input
from edgecloud.server.services.resource import OwnedResource

INIT, READY, USED, DISABLED, LOCKED, ERROR, USED_PERS = 0, 1, 2, 3, 4, 5, 8
# States in which VMs may take an image.
USABLE = (READY, USED, USED_PERS)


class Images(OwnedResource[Image, wire.ImageCreate, wire.ImageUpdate, wire.Image]):
    """Use cases of image records (the copy of their bytes arrives with the storage drivers)."""

    kind = "IMAGE"
    model = Image
    read_type = wire.Image

    def build(self, session: Session, principal: Principal, body: wire.ImageCreate) -> Image:
        """Return a new image row, after the datastore and quota checks.

        With bytes to copy (import_path, url, upload) the image is LOCKED until they are
        stored (see edgecloud.server.datastore); with `path` it is READY at once.
        """
        ds = load(session, principal, Datastore, "DATASTORE", body.datastore_id, right="USE")
        if ds.kind not in ("image", "file"):
            raise InvalidInput("datastore_id", f"datastore {ds.id} is a {ds.kind} datastore")
        sources = [
            name
            for name, given in (
                ("path", body.path),
                ("import_path", body.import_path),
                ("url", body.url),
                ("upload", body.upload),
            )
            if given
        ]
        if len(sources) > 1:
            raise InvalidInput(sources[1], f"give one of {', '.join(sources)}, not both")
        if (body.path or body.import_path) and not principal.is_admin:
            # Hosts and the front-end read these as given: only an administrator may.
            field = "path" if body.path else "import_path"
            raise InvalidInput(field, "registering a path of a machine is for administrators")
        if body.checksum and not (body.import_path or body.url or body.upload):
            raise InvalidInput(
                "checksum", "only a copied image (import_path, url, upload) is checked"
            )
        quotas.charge(session, principal.user_id, principal.group_id, quotas.Usage(images=1))
        origin = (
            f"file:{body.import_path}"
            if body.import_path
            else body.url
            if body.url
            else "upload"
            if body.upload
            else ""
        )
        fmt = body.format or ("auto" if origin else "raw")
        if not origin and fmt == "auto":
            raise InvalidInput("format", "a path on the hosts needs its format: raw, qcow2 or dir")
        checksum = body.checksum.lower()
        if checksum and not checksum.startswith("sha256:"):
            checksum = f"sha256:{checksum}"
        return Image(
            name=body.name,
            datastore_id=ds.id,
            kind=body.kind,
            persistent=body.persistent,
            size_mb=body.size_mb,
            format=fmt,
            path=body.path,
            origin=origin,
            checksum=checksum,
            state=LOCKED if origin else READY,
            template=parse_template_input(body.template),
        )

    def after_create(
        self, session: Session, principal: Principal, row: Image, body: wire.ImageCreate
    ) -> None:
        """Tell the importer there is something to copy."""
        if row.origin and row.origin != "upload":
            session.info.setdefault("after_commit", []).append(importer_wake)

    def create_copied(
        self,
        session: Session,
        principal: Principal,
        body: wire.ImageCreate,
        origin: str,
        home: Path,
    ) -> tuple[int, Path]:
        """Register a LOCKED image whose bytes the caller copies in itself (a save-as, a
        bundle's disk): its origin keeps the importer away. Return its id and file."""
        image = self.create(session, principal, body)
        row = session.get(Image, image.id)
        ds = session.get(Datastore, image.datastore_id)
        assert row is not None
        assert ds is not None
        row.origin = origin
        return image.id, target_of(home, ds, image.id)

    def clone(
        self, session: Session, principal: Principal, image_id: int, body: wire.ImageClone
    ) -> wire.Image:
        """Register a copy of an image: LOCKED until the importer has copied its bytes."""
        source = self.load(session, principal, image_id, "USE")
        if not source.source or not source.checksum:
            raise InvalidInput("id", f"image {source.id} has no bytes in a datastore to copy")
        if source.state not in USABLE:
            state = wire.IMAGE_STATES.get(source.state, str(source.state))
            raise Conflict(f"image {source.id} is {state}: it cannot be copied now", field="id")
        target_ds = source.datastore_id if body.datastore_id is None else body.datastore_id
        create = wire.ImageCreate(
            name=body.name,
            datastore_id=target_ds,
            kind=source.kind,
            persistent=False,
            size_mb=source.size_mb,
            template=dict(source.template),
        )
        row = self.build(session, principal, create)
        row.origin, row.format, row.state = f"image:{source.id}", source.format, LOCKED
        row.checksum = source.checksum
        return self.create_row(session, principal, row, create)

    def change(
        self, session: Session, principal: Principal, row: Image, body: wire.ImageUpdate
    ) -> None:
        """Change persistence, kind or attributes (not while the image is in use)."""
        if body.persistent is not None and body.persistent != row.persistent:
            if row.running_vms:
                raise Conflict(
                    f"image {row.id} is used by {row.running_vms} VM(s)", field="persistent"
                )
            row.persistent = body.persistent
        if body.kind is not None:
            row.kind = body.kind
        if body.template is not None:
            row.template = parse_template_input(body.template)

    def before_delete(self, session: Session, principal: Principal, row: Image) -> None:
        """Refuse while VMs use the image; its bytes go once the deletion is committed."""
        if row.running_vms:
            raise Conflict(f"image {row.id} is used by {row.running_vms} VM(s)", field="id")
        if row.source:
            source = row.source
            session.info.setdefault("after_commit", []).append(lambda: remove(source))

    def render(self, session: Session, row: Image) -> dict[str, Any]:
        """Add datastore, state and format."""
        return {
            "datastore_id": row.datastore_id,
            "kind": row.kind,
            "state": row.state,
            "state_name": wire.IMAGE_STATES.get(row.state, str(row.state)),
            "persistent": row.persistent,
            "size_mb": row.size_mb,
            "format": row.format,
            "path": row.path,
            "source": row.source,
            "running_vms": row.running_vms,
            "checksum": row.checksum if row.state in USABLE else "",
            "origin": row.origin,
            "last_error": row.last_error,
            "bytes": row.bytes,
        }

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Filter by datastore and state."""
        terms: list[ColumnElement[bool]] = []
        if params.get("datastore_id") is not None:
            terms.append(Image.datastore_id == params["datastore_id"])
        if params.get("state") is not None:
            terms.append(Image.state == params["state"])
        return terms


def take(image: Image) -> None:
    """A VM starts using the image (USED, or USED_PERS for a persistent one)."""
    image.running_vms += 1
    if image.state in USABLE:
        image.state = USED_PERS if image.persistent else USED


def give_back(image: Image) -> None:
    """A VM stops using the image."""
    if image.running_vms > 0:
        image.running_vms -= 1
    if image.running_vms == 0 and image.state in (USED, USED_PERS):
        image.state = READY


def check_usable(image: Image, field: str) -> None:
    """Refuse an image a VM cannot take now (being copied, failed, a persistent one in use)."""
    if image.state not in USABLE:
        state = wire.IMAGE_STATES.get(image.state, str(image.state))
        why = f": {image.last_error}" if image.last_error else ""
        raise InvalidInput(field, f"image {image.id} is {state}{why}")
    if image.persistent and image.running_vms:
        raise InvalidInput(field, f"image {image.id} is persistent and already used by a VM")
