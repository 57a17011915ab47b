"""Images: disk image records in image datastores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Datastore, Image
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services import quotas
from edgecloud.server.services.objects import load, parse_template_input
from edgecloud.server.services.resource import OwnedResource

READY = 1


class Images(OwnedResource[Image, wire.ImageCreate, wire.ImageUpdate, wire.Image]):
    """Use cases of image records (the copy of their bytes arrives with the storage drivers)."""

    kind = "IMAGE"
    model = Image
    read_type = wire.Image

    def build(self, session: Session, principal: Principal, body: wire.ImageCreate) -> Image:
        """Return a new image row, after the datastore and quota checks."""
        ds = load(session, principal, Datastore, "DATASTORE", body.datastore_id, right="USE")
        if ds.kind not in ("image", "file"):
            raise InvalidInput("datastore_id", f"datastore {ds.id} is a {ds.kind} datastore")
        if body.path and not principal.is_admin:
            # Hosts read the path as given: only an administrator may point at their files.
            raise InvalidInput("path", "registering a path on the hosts is for administrators")
        quotas.charge(session, principal.user_id, principal.group_id, quotas.Usage(images=1))
        return Image(
            name=body.name,
            datastore_id=ds.id,
            kind=body.kind,
            persistent=body.persistent,
            size_mb=body.size_mb,
            format=body.format,
            path=body.path,
            state=READY,
            template=parse_template_input(body.template),
        )

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
        """Refuse while VMs use the image."""
        if row.running_vms:
            raise Conflict(f"image {row.id} is used by {row.running_vms} VM(s)", field="id")

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
        }

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Filter by datastore and state."""
        terms: list[ColumnElement[bool]] = []
        if params.get("datastore_id") is not None:
            terms.append(Image.datastore_id == params["datastore_id"])
        if params.get("state") is not None:
            terms.append(Image.state == params["state"])
        return terms
