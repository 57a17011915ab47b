"""`edgecloud provision`: whole edge clusters described by a template file."""

from pathlib import Path
from typing import Annotated, Any

import typer

from edgecloud.cli.context import cli_state
from edgecloud.cli.nouns import noun_app
from edgecloud.cli.output import Format, fail, mib, number, print_data, print_table
from edgecloud.provision import AddressRangeSpec, ProvisionTemplate, TemplateError, load_template

app = noun_app("Edge clusters from a template: on-prem, AWS, or simulated locally.")

TemplatePath = Annotated[
    Path,
    typer.Argument(
        metavar="FILE", exists=True, dir_okay=False, help="The provision template (YAML)."
    ),
]
Inputs = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        metavar="KEY=VALUE",
        help="A value for one of the template's inputs (repeatable).",
    ),
]


@app.command("validate")
def validate(ctx: typer.Context, file: TemplatePath, given: Inputs = None) -> None:
    """Check a template offline (no front-end needed) and show what it would create."""
    state = cli_state(ctx)  # only for --output: never builds a client
    values = input_values(given or [])
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: cannot read: {exc}")
    try:
        template = load_template(text, values)
    except TemplateError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        count = len(exc.problems)
        fail(f"{file}: {count} problem{'s' if count != 1 else ''}")
    if state.output is not Format.TABLE:
        print_data(state.output, summary(template))
        return
    print_summary(template)


def input_values(pairs: list[str]) -> dict[str, str]:
    """Turn KEY=VALUE options into a mapping (the values are never echoed)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter("give KEY=VALUE", param_hint="--input")
        if key in values:
            raise typer.BadParameter(f"{key} given twice", param_hint="--input")
        values[key] = value
    return values


def summary(template: ProvisionTemplate) -> dict[str, Any]:
    """Return what the provision would create (provider settings left out: may hold secrets)."""
    return template.model_dump(
        mode="json", include={"name", "provider", "cluster", "hosts", "datastores", "networks"}
    )


def print_summary(template: ProvisionTemplate) -> None:
    """Print the provision for people: a few lines, then one table per kind of object."""
    cluster = template.cluster
    reserved = f"{number(cluster.reserved_cpu)} CPU, {mib(cluster.reserved_memory_mb)}"
    typer.echo(f"provision  {template.name}")
    typer.echo(f"provider   {template.provider}")
    typer.echo(f"cluster    {cluster.name} (reserved per host: {reserved})")
    if template.images or template.vm_templates:
        typer.echo(f"images     {len(template.images)}, VM templates {len(template.vm_templates)}")
    typer.echo()
    print_table(
        ("HOST", "ADDRESS", "HYPERVISORS"),
        [(host.name, host.address, host.hypervisors) for host in template.hosts],
    )
    hosts: dict[int | None, str] = {host.index: host.name for host in template.hosts}
    if template.datastores:
        typer.echo()
        print_table(
            ("DATASTORE", "KIND", "REPLICA HOST"),
            [(ds.name, ds.kind, hosts.get(ds.replica_host)) for ds in template.datastores],
        )
    if template.networks:
        typer.echo()
        print_table(
            ("NETWORK", "DRIVER", "PUBLIC", "ADDRESSES"),
            [
                (net.name, net.driver, net.public, _addresses(net.address_range))
                for net in template.networks
            ],
        )


def _addresses(address_range: AddressRangeSpec) -> str:
    return f"{address_range.ip} - {address_range.last_ip} ({address_range.size})"
