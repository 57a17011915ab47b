"""`edgecloud cluster`: edge sites, and the datastores and vnets they can use."""

from typing import Annotated

import typer

from edgecloud.cli.nouns import (
    Noun,
    ObjId,
    TemplateFile,
    add_common,
    changes,
    created,
    noun_app,
    read_template,
    updated,
)
from edgecloud.cli.output import mib, number, report

CLUSTER = Noun(
    "cluster",
    lambda client: client.clusters,
    [
        ("ID", lambda c: c.id),
        ("NAME", lambda c: c.name),
        ("HOSTS", lambda c: len(c.host_ids)),
        ("DATASTORES", lambda c: c.datastore_ids),
        ("VNETS", lambda c: c.vnet_ids),
        ("RESERVED", lambda c: f"{number(c.reserved_cpu)} CPU, {mib(c.reserved_memory_mb)}"),
    ],
)
app = noun_app("Clusters: edge sites of hosts, datastores and vnets.")
add_common(app, CLUSTER)

ReservedCpu = Annotated[
    float | None, typer.Option("--reserved-cpu", min=0, help="CPUs kept back on every host.")
]
ReservedMemory = Annotated[
    int | None, typer.Option("--reserved-memory", min=0, help="MiB kept back on every host.")
]
Recreate = Annotated[
    bool | None,
    typer.Option(
        "--recreate-on-host-failure/--keep-on-host-failure",
        help="Recreate the VMs of a failed host on other hosts (and fence it).",
    ),
]
Grace = Annotated[
    int | None,
    typer.Option("--failure-grace", min=0, help="Seconds a host stays ERROR before that."),
]
MemberId = Annotated[
    int, typer.Argument(metavar="MEMBER_ID", min=0, help="The datastore's or vnet's id.")
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Cluster name.")],
    reserved_cpu: ReservedCpu = None,
    reserved_memory: ReservedMemory = None,
    recreate: Recreate = None,
    grace: Grace = None,
    file: TemplateFile = None,
) -> None:
    """Create a cluster."""
    state, clusters = CLUSTER.of(ctx)
    cluster = clusters.create(
        name=name,
        reserved_cpu=reserved_cpu,
        reserved_memory_mb=reserved_memory,
        recreate_on_host_failure=recreate,
        host_failure_grace=grace,
        template=read_template(file),
    )
    created(state, "cluster", cluster)


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    reserved_cpu: ReservedCpu = None,
    reserved_memory: ReservedMemory = None,
    recreate: Recreate = None,
    grace: Grace = None,
    file: TemplateFile = None,
) -> None:
    """Change a cluster's reservations, host failure policy or attributes."""
    body = changes(
        reserved_cpu=reserved_cpu,
        reserved_memory_mb=reserved_memory,
        recreate_on_host_failure=recreate,
        host_failure_grace=grace,
        template=read_template(file),
    )
    state, clusters = CLUSTER.of(ctx)
    updated(state, "cluster", obj_id, clusters.update(obj_id, **body))


def _add_membership(verb: str, member: str, add: bool) -> None:
    kind = member.removesuffix("s")

    def membership(ctx: typer.Context, obj_id: ObjId, member_id: MemberId) -> None:
        state, clusters = CLUSTER.of(ctx)
        change = clusters.add if add else clusters.remove
        change(obj_id, member, member_id)
        where = "to" if add else "from"
        done = "added" if add else "removed"
        report(state.output, None, f"{done} {kind} {member_id} {where} cluster {obj_id}")

    action = "Add a" if add else "Remove a"
    app.command(verb, help=f"{action} {kind} {'to' if add else 'from'} a cluster.")(membership)


_add_membership("add-datastore", "datastores", add=True)
_add_membership("del-datastore", "datastores", add=False)
_add_membership("add-vnet", "vnets", add=True)
_add_membership("del-vnet", "vnets", add=False)
