"""`edgecloud host`: register hosts, see their capacity, enable, disable or set them offline."""

from typing import Annotated, Literal

import typer

from edgecloud.api.infra import HOST_STATES, Host, HypervisorKind
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
from edgecloud.cli.output import mib, number, report


def host_state(host: Host) -> str:
    """Return the host's state name (OpenNebula numbering)."""
    return HOST_STATES.get(host.state, str(host.state))


HOST = Noun(
    "host",
    lambda client: client.hosts,
    [
        ("ID", lambda h: h.id),
        ("NAME", lambda h: h.name),
        ("CLUSTER", lambda h: h.cluster_id),
        ("HYPERVISOR", lambda h: h.hypervisor),
        ("STATE", host_state),
        ("CPU", lambda h: f"{number(h.used_cpu)}/{number(h.total_cpu)}"),
        ("MEM", lambda h: f"{mib(h.used_memory_mb)}/{mib(h.total_memory_mb)}"),
        ("VMS", lambda h: h.running_vms),
    ],
)
app = noun_app("Hosts: the machines that run VMs and containers.")
add_common(app, HOST, ("show", "delete", "chmod", "chown"))

Cluster = Annotated[int | None, typer.Option("--cluster", min=0, help="Cluster id.")]
Cpu = Annotated[float | None, typer.Option("--cpu", min=0, help="Total CPUs.")]
Memory = Annotated[int | None, typer.Option("--memory", min=0, help="Total memory in MiB.")]


@app.command("list")
def list_hosts(
    ctx: typer.Context,
    name: NameFilter = None,
    cluster: Cluster = None,
) -> None:
    """List hosts with their state and capacity."""
    list_objects(ctx, HOST, name=name, cluster_id=cluster)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Host name (how the front-end reaches it).")
    ],
    cluster: Annotated[int, typer.Option("--cluster", min=0, help="Cluster id.")] = 0,
    hypervisor: Annotated[HypervisorKind, typer.Option(help="How the host runs VMs.")] = "kvm",
    cpu: Annotated[float, typer.Option(min=0, help="Total CPUs.")] = 0.0,
    memory: Annotated[int, typer.Option(min=0, help="Total memory in MiB.")] = 0,
    file: TemplateFile = None,
    transport: Annotated[
        Literal["ssh", "local"], typer.Option(help="ssh to the address, or local: this machine.")
    ] = "ssh",
    address: Annotated[str, typer.Option(help="SSH address (default: the name).")] = "",
    port: Annotated[int, typer.Option(min=1, max=65535, help="SSH port.")] = 22,
    root: Annotated[
        str, typer.Option(help="The host's directory for node code and guests.")
    ] = "/var/lib/edgecloud",
    host_key: Annotated[
        str | None,
        typer.Option(help="SSH host key to pin (else pinned on first contact)."),
    ] = None,
) -> None:
    """Register a host in a cluster; the monitor then connects, pins its key, probes it."""
    state, hosts = HOST.of(ctx)
    host = hosts.create(
        name=name,
        cluster_id=cluster,
        hypervisor=hypervisor,
        total_cpu=cpu,
        total_memory_mb=memory,
        template=read_template(file),
        transport=transport,
        address=address,
        port=port,
        root=root,
        host_key=host_key,
    )
    created(state, "host", host)


@app.command("sync")
def sync(ctx: typer.Context, obj_id: ObjId) -> None:
    """Copy the node code to a host now (done on its own on add and on version change)."""
    state, hosts = HOST.of(ctx)
    host = hosts.sync(obj_id)
    report(state.output, host, f"host {obj_id}: node code {host.node_version[:12]}")


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    cluster: Cluster = None,
    cpu: Cpu = None,
    memory: Memory = None,
    file: TemplateFile = None,
) -> None:
    """Move a host to another cluster, or change its capacity or attributes."""
    body = changes(
        cluster_id=cluster, total_cpu=cpu, total_memory_mb=memory, template=read_template(file)
    )
    state, hosts = HOST.of(ctx)
    updated(state, "host", obj_id, hosts.update(obj_id, **body))


def _add_status(status: Literal["enabled", "disabled", "offline"], verb: str) -> None:
    def set_status(ctx: typer.Context, obj_id: ObjId) -> None:
        state, hosts = HOST.of(ctx)
        host = hosts.status(obj_id, status)
        report(state.output, host, f"host {obj_id}: {host_state(host)}")

    app.command(verb, help=f"Set a host {status}.")(set_status)


_add_status("enabled", "enable")
_add_status("disabled", "disable")
_add_status("offline", "offline")
