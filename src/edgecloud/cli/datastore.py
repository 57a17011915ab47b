"""`edgecloud datastore`: where images live, and where running VMs keep their disks."""

from typing import Annotated, Literal

import typer

from edgecloud.api.infra import DatastoreKind
from edgecloud.cli.nouns import (
    NameFilter,
    Noun,
    ObjId,
    TemplateFile,
    add_common,
    changes,
    created,
    list_objects,
    noun_app,
    read_template,
    updated,
)
from edgecloud.cli.output import mib

DATASTORE = Noun(
    "datastore",
    lambda client: client.datastores,
    [
        ("ID", lambda d: d.id),
        ("NAME", lambda d: d.name),
        ("KIND", lambda d: d.kind),
        ("TRANSFER", lambda d: d.transfer),
        ("CLUSTERS", lambda d: d.cluster_ids),
        ("FREE", lambda d: f"{mib(d.free_mb)}/{mib(d.total_mb)}"),
    ],
)
app = noun_app("Datastores: image, system and file stores.")
add_common(app, DATASTORE, ("show", "delete", "chmod", "chown"))


@app.command("list")
def list_datastores(
    ctx: typer.Context,
    name: NameFilter = None,
    kind: Annotated[DatastoreKind | None, typer.Option(help="Only this kind.")] = None,
) -> None:
    """List datastores and their free space."""
    list_objects(ctx, DATASTORE, name=name, kind=kind)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Datastore name.")],
    kind: Annotated[DatastoreKind, typer.Option(help="What the datastore holds.")],
    cluster: Annotated[
        list[int] | None, typer.Option("--cluster", min=0, help="Cluster id (repeatable).")
    ] = None,
    transfer: Annotated[
        Literal["ssh", "local", "shared"], typer.Option(help="How disks reach hosts.")
    ] = "ssh",
    size: Annotated[int | None, typer.Option(min=0, help="Total size in MiB.")] = None,
    file: TemplateFile = None,
) -> None:
    """Create a datastore in one or more clusters (default: cluster 0)."""
    state, datastores = DATASTORE.of(ctx)
    datastore = datastores.create(
        name=name,
        kind=kind,
        transfer=transfer,
        cluster_ids=cluster or None,
        total_mb=size,
        template=read_template(file),
    )
    created(state, "datastore", datastore)


@app.command("update")
def update(ctx: typer.Context, obj_id: ObjId, file: TemplateFile = None) -> None:
    """Replace a datastore's attributes."""
    body = changes(template=read_template(file))
    state, datastores = DATASTORE.of(ctx)
    updated(state, "datastore", obj_id, datastores.update(obj_id, **body))
