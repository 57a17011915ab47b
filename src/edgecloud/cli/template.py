"""`edgecloud template`: VM templates, and creating VMs from them."""

from typing import Annotated, Any, Literal

import typer

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
from edgecloud.cli.output import when

TEMPLATE = Noun(
    "template",
    lambda client: client.templates,
    [
        ("ID", lambda t: t.id),
        ("NAME", lambda t: t.name),
        ("OWNER", lambda t: t.owner_id),
        ("GROUP", lambda t: t.group_id),
        ("CPU", lambda t: t.template.get("CPU")),
        ("MEMORY", lambda t: t.template.get("MEMORY")),
        ("CREATED", lambda t: when(t.created_at)),
    ],
)
app = noun_app("VM templates.")
add_common(app, TEMPLATE, ("show", "delete", "chmod", "chown"))

VmHypervisor = Literal["kvm", "lxc", "microvm"]
VmName = Annotated[str | None, typer.Option("--name", help="Name of the new VM.")]
Hold = Annotated[bool, typer.Option("--hold", help="Keep the VM on hold (not scheduled).")]


@app.command("list")
def list_templates(ctx: typer.Context, name: NameFilter = None) -> None:
    """List VM templates."""
    list_objects(ctx, TEMPLATE, name=name)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Name (default: the template's NAME).")
    ] = None,
    file: TemplateFile = None,
    cpu: Annotated[float | None, typer.Option(min=0, help="CPU share.")] = None,
    vcpu: Annotated[int | None, typer.Option(min=1, help="Virtual CPUs.")] = None,
    memory: Annotated[int | None, typer.Option(min=1, help="Memory in MiB.")] = None,
    hypervisor: Annotated[VmHypervisor | None, typer.Option(help="How the VM runs.")] = None,
    nic: Annotated[
        list[int] | None, typer.Option("--nic", min=0, help="A NIC on this vnet id (repeatable).")
    ] = None,
    disk: Annotated[
        list[int] | None,
        typer.Option("--disk", min=0, help="A disk of this image id (repeatable)."),
    ] = None,
) -> None:
    """Create a VM template from a file, or from options."""
    shape = attributes(cpu=cpu, vcpu=vcpu, memory=memory, hypervisor=hypervisor, nic=nic, disk=disk)
    if file is not None and shape:
        raise typer.BadParameter("give --file or the attribute options, not both")
    template = read_template(file) if file is not None else shape
    if not template:
        raise typer.BadParameter("give --file, or at least --cpu and --memory")
    state, templates = TEMPLATE.of(ctx)
    created(state, "template", templates.create(name=name, template=template))


def attributes(
    *,
    cpu: float | None,
    vcpu: int | None,
    memory: int | None,
    hypervisor: str | None,
    nic: list[int] | None,
    disk: list[int] | None,
) -> dict[str, Any]:
    """Build template attributes (as OpenNebula strings) from the create options."""
    single = {"CPU": cpu, "VCPU": vcpu, "MEMORY": memory, "HYPERVISOR": hypervisor}
    attrs: dict[str, Any] = {
        k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in single.items() if v is not None
    }
    if disk:
        attrs["DISK"] = [{"IMAGE_ID": str(image)} for image in disk]
    if nic:
        attrs["NIC"] = [{"NETWORK_ID": str(vnet)} for vnet in nic]
    return attrs


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    file: TemplateFile = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge the file into the template.")
    ] = False,
) -> None:
    """Rename a template or replace (or --merge) its attributes."""
    body = changes(name=name, template=read_template(file))
    state, templates = TEMPLATE.of(ctx)
    updated(state, "template", obj_id, templates.update(obj_id, merge=merge or None, **body))


@app.command("instantiate")
def instantiate(
    ctx: typer.Context,
    obj_id: ObjId,
    name: VmName = None,
    hold: Hold = False,
    file: TemplateFile = None,
) -> None:
    """Create a VM from a template (a --file overrides its attributes)."""
    state, templates = TEMPLATE.of(ctx)
    vm = templates.instantiate(obj_id, name=name, hold=hold or None, template=read_template(file))
    created(state, "vm", vm)
