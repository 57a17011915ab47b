"""`edgecloud vm resize` and `vm updateconf`: a VM's size and configuration, changed while
it runs nowhere (powered off, undeployed, pending or on hold)."""

from pathlib import Path
from typing import Annotated

import typer

from edgecloud.cli.nouns import ObjId, updated
from edgecloud.cli.output import fail
from edgecloud.cli.vm import VM, app


@app.command("resize")
def resize(
    ctx: typer.Context,
    obj_id: ObjId,
    cpu: Annotated[float | None, typer.Option("--cpu", min=0.01, help="Physical CPUs.")] = None,
    vcpu: Annotated[int | None, typer.Option("--vcpu", min=1, help="Virtual CPUs.")] = None,
    memory: Annotated[int | None, typer.Option("--memory", min=1, help="MiB.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Do not check the host's room (administrators).")
    ] = False,
) -> None:
    """Give a powered-off (undeployed, pending, held) VM a new size; it applies at boot."""
    if cpu is None and vcpu is None and memory is None:
        fail("give --cpu, --vcpu and/or --memory")
    state, vms = VM.of(ctx)
    vm = vms.resize(obj_id, cpu=cpu, vcpu=vcpu, memory_mb=memory, enforce=not force)
    updated(state, "vm", obj_id, vm)


@app.command("updateconf")
def update_conf(
    ctx: typer.Context,
    obj_id: ObjId,
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="OS, FEATURES, ... CONTEXT sections."
        ),
    ],
    merge: Annotated[bool, typer.Option("--merge", help="Merge into each section.")] = False,
) -> None:
    """Replace a powered-off VM's OS, FEATURES, INPUT, GRAPHICS, RAW, CPU_MODEL or CONTEXT."""
    state, vms = VM.of(ctx)
    updated(state, "vm", obj_id, vms.update_conf(obj_id, file.read_text(), merge=merge))
