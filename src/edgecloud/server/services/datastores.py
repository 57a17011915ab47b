"""Datastores: image datastores and the system datastores of hosts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from edgecloud.api import infra as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import ClusterDatastore, Datastore, Image
from edgecloud.server.errors import Conflict
from edgecloud.server.services.clusters import cluster_ids_of, set_cluster_links
from edgecloud.server.services.objects import parse_template_input
from edgecloud.server.services.resource import OwnedResource


class Datastores(
    OwnedResource[Datastore, wire.DatastoreCreate, wire.DatastoreUpdate, wire.Datastore]
):
    """Use cases of datastores."""

    kind = "DATASTORE"
    model = Datastore
    read_type = wire.Datastore
    unique_per_owner = False

    def build(
        self, session: Session, principal: Principal, body: wire.DatastoreCreate
    ) -> Datastore:
        """Return a new datastore row."""
        return Datastore(
            name=body.name,
            kind=body.kind,
            driver=body.driver,
            transfer=body.transfer,
            total_mb=body.total_mb,
            free_mb=body.total_mb,
            template=parse_template_input(body.template),
        )

    def after_create(
        self, session: Session, principal: Principal, row: Datastore, body: wire.DatastoreCreate
    ) -> None:
        """Put the datastore into its clusters."""
        set_cluster_links(session, ClusterDatastore, "datastore_id", row.id, body.cluster_ids)
        session.flush()

    def change(
        self, session: Session, principal: Principal, row: Datastore, body: wire.DatastoreUpdate
    ) -> None:
        """Replace the attributes."""
        if body.template is not None:
            row.template = parse_template_input(body.template)

    def before_delete(self, session: Session, principal: Principal, row: Datastore) -> None:
        """Refuse while images live in the datastore."""
        count = session.scalar(select(func.count()).where(Image.datastore_id == row.id))
        if count:
            raise Conflict(f"datastore {row.id} still holds {count} image(s)", field="id")

    def render(self, session: Session, row: Datastore) -> dict[str, Any]:
        """Add kind, drivers, capacity and clusters."""
        return {
            "kind": row.kind,
            "driver": row.driver,
            "transfer": row.transfer,
            "total_mb": row.total_mb,
            "free_mb": row.free_mb,
            "cluster_ids": cluster_ids_of(session, ClusterDatastore, "datastore_id", row.id),
        }

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Filter by kind."""
        kind = params.get("kind")
        return [Datastore.kind == kind] if kind else []
