"""`edgecloud provision create/list/show/scale/configure/retry/delete`: through the front-end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from edgecloud.api.provision import Provision
from edgecloud.cli.context import CliState
from edgecloud.cli.nouns import Noun, ObjId, add_common
from edgecloud.cli.output import Format, fail, print_data, print_one, print_table, report, when
from edgecloud.cli.provision import Inputs, app, input_values
from edgecloud.client import Client

PROVISION = Noun(
    "provision",
    lambda client: client.provisions,
    [
        ("ID", lambda p: p.id),
        ("NAME", lambda p: p.name),
        ("PROVIDER", lambda p: p.provider),
        ("STATE", lambda p: p.state_name),
        ("STEP", lambda p: f"{p.operation} {p.step}".strip() if p.step else "-"),
        ("CLUSTER", lambda p: p.cluster_id),
        ("HOSTS", lambda p: len(p.hosts)),
        ("TAG", lambda p: p.tag),
    ],
)
add_common(app, PROVISION, ("list",))

Wait = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the steps and their log until it ends.")
]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help="Seconds --wait waits at most.")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(metavar="[FILE]", exists=True, dir_okay=False, help="The template."),
    ] = None,
    example: Annotated[
        str | None, typer.Option("--example", help="A shipped template, e.g. local-edge.")
    ] = None,
    given: Inputs = None,
    wait: Wait = False,
    timeout: Timeout = 1800.0,
) -> None:
    """Create a provision: hosts at the provider, configured, registered as a cluster."""
    if (file is None) == (example is None):
        fail("give a template FILE or --example NAME")
    state, provisions = PROVISION.of(ctx)
    text = file.read_text(encoding="utf-8") if file is not None else None
    made = provisions.create(template=text, example=example, inputs=input_values(given or []))
    report(state.output, made, f"created provision {made.id} ({made.tag})")
    if wait:
        _follow(state, made.id, timeout)


@app.command("show")
def show(
    ctx: typer.Context,
    obj_id: ObjId,
    log: Annotated[bool, typer.Option("--log", help="Also show every step's log.")] = False,
) -> None:
    """Show a provision (and its step log)."""
    state, provisions = PROVISION.of(ctx)
    found = provisions.get(obj_id)
    steps = provisions.log(obj_id) if log else []
    if state.output is not Format.TABLE:
        data = found.model_dump(mode="json")
        if log:
            data["log"] = [step.model_dump(mode="json") for step in steps]
        print_data(state.output, data)
        return
    print_one(state.output, found, exclude={"hosts", "made", "template"})
    if found.hosts:
        typer.echo()
        print_table(
            ("HOST", "ADDRESS", "HOST ID", "AT PROVIDER"),
            [(h.name, f"{h.address}:{h.port}", h.host_id, h.resource_id) for h in found.hosts],
        )
    for step in steps:
        ended = when(step.ended_at) if step.ended_at else "running"
        typer.echo(f"\n== {step.operation} / {step.name}: {step.state} ({ended})")
        typer.echo(step.log.rstrip() or "(no output)")


@app.command("scale")
def scale(
    ctx: typer.Context,
    obj_id: ObjId,
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=64, help="Hosts wanted.")],
    wait: Wait = False,
    timeout: Timeout = 1800.0,
) -> None:
    """Add or remove hosts (removed ones must run no VM)."""
    state, provisions = PROVISION.of(ctx)
    _started(state, provisions.scale(obj_id, hosts), wait, timeout)


@app.command("configure")
def configure(
    ctx: typer.Context, obj_id: ObjId, wait: Wait = False, timeout: Timeout = 1800.0
) -> None:
    """Run the host configuration again on every host."""
    state, provisions = PROVISION.of(ctx)
    _started(state, provisions.configure(obj_id), wait, timeout)


@app.command("retry")
def retry(ctx: typer.Context, obj_id: ObjId, wait: Wait = False, timeout: Timeout = 1800.0) -> None:
    """Resume a failed operation at the step that failed."""
    state, provisions = PROVISION.of(ctx)
    _started(state, provisions.retry(obj_id), wait, timeout)


@app.command("delete")
def delete(
    ctx: typer.Context,
    obj_id: ObjId,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Terminate its VMs, go on past objects that refuse, and remove everything "
            "the provider has under the provision's tag.",
        ),
    ] = False,
    wait: Wait = False,
    timeout: Timeout = 1800.0,
) -> None:
    """Delete a provision: its objects here, then its hosts at the provider."""
    state, provisions = PROVISION.of(ctx)
    _started(state, provisions.delete(obj_id, force=force), wait, timeout)


def _started(state: CliState, found: Provision, wait: bool, timeout: float) -> None:
    report(state.output, found, f"provision {found.id}: {found.operation} requested")
    if wait:
        _follow(state, found.id, timeout)


def _follow(state: CliState, provision_id: int, timeout: float) -> None:
    """Print each new log line until the operation ends; fail on ERROR."""
    client: Client = state.client
    printed: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        found = client.provisions.get(provision_id)
        for step in client.provisions.log(provision_id):
            lines = step.log.splitlines()
            start = printed.get(step.id)
            if start is None:
                typer.echo(f"== {step.operation} / {step.name}", err=True)
                start = 0
            for line in lines[start:]:
                typer.echo(f"   {line}", err=True)
            printed[step.id] = len(lines)
        if found.state_name in ("RUNNING", "DONE"):
            typer.echo(f"provision {provision_id} is {found.state_name}")
            return
        if found.state_name == "ERROR":
            fail(
                f"provision {provision_id} is ERROR at {found.operation} step {found.step}: "
                f"{found.last_error}\n(edgecloud provision retry {provision_id} resumes it)"
            )
        if time.monotonic() > deadline:
            fail(f"provision {provision_id} is still {found.state_name} after {timeout:.0f} s")
        time.sleep(0.5)
