"""The `edgecloud` command: global options, one sub-command per noun, `up`, `login`, `version`."""

from typing import Annotated

import typer

from edgecloud import __version__
from edgecloud.cli import (
    acl,
    cluster,
    datastore,
    group,
    host,
    image,
    operation,
    provision,
    provision_run,  # noqa: F401 - adds create, list, show, scale, ... to provision
    secgroup,
    template,
    user,
    vm,
    vm_config,  # noqa: F401 - adds vm resize and updateconf
    vm_disks,  # noqa: F401 - adds the vm disk-* commands
    vnet,
)
from edgecloud.cli.context import CliState, cli_state
from edgecloud.cli.errors import GuardedGroup
from edgecloud.cli.output import Format, print_data, print_table, when
from edgecloud.cli.up import up
from edgecloud.client.client import DEFAULT_URL

app = typer.Typer(
    name="edgecloud",
    cls=GuardedGroup,
    help="Manage an edgecloud front-end: hosts, clusters, networks, images and VMs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
)
NOUNS = {
    "host": host.app,
    "cluster": cluster.app,
    "datastore": datastore.app,
    "image": image.app,
    "vnet": vnet.app,
    "secgroup": secgroup.app,
    "template": template.app,
    "vm": vm.app,
    "user": user.app,
    "group": group.app,
    "acl": acl.app,
    "operation": operation.app,
    "provision": provision.app,
}
for _name, _noun_app in NOUNS.items():
    app.add_typer(_noun_app, name=_name)
app.command("up")(up)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="EDGECLOUD_URL", help="Front-end URL.")] = DEFAULT_URL,
    auth: Annotated[
        str | None,
        typer.Option(
            envvar="EDGECLOUD_AUTH",
            show_envvar=True,
            help="Credentials 'user:password' (default: the file $EDGECLOUD_HOME/auth).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="EDGECLOUD_TOKEN", help="Bearer token from `edgecloud login`."),
    ] = None,
    output: Annotated[Format, typer.Option("--output", "-o", help="Output format.")] = Format.TABLE,
) -> None:
    """Manage an edgecloud front-end: hosts, clusters, networks, images and VMs."""
    state = CliState(url=url, auth=auth, token=token, output=output)
    ctx.obj = state
    ctx.call_on_close(state.close)


@app.command("login")
def login(
    ctx: typer.Context,
    ttl: Annotated[
        int | None, typer.Option(min=60, help="Token lifetime in seconds (default: server's).")
    ] = None,
) -> None:
    """Exchange the password for a bearer token (use it as EDGECLOUD_TOKEN)."""
    state = cli_state(ctx)
    answer = state.client.login(ttl_seconds=ttl)
    if state.output is not Format.TABLE:
        print_data(state.output, answer)
        return
    typer.echo(f"token:   {answer.token}")
    typer.echo(f"expires: {when(answer.expires_at)}")
    typer.echo(f"user:    {answer.user_name} ({answer.user_id})")


@app.command("version")
def version(ctx: typer.Context) -> None:
    """Show the client's version and the front-end's."""
    state = cli_state(ctx)
    if state.output is Format.TABLE:
        typer.echo(f"client  {__version__}")
    server = state.client.version()
    if state.output is not Format.TABLE:
        print_data(state.output, {"client": __version__, "server": server.model_dump()})
        return
    print_table(
        ("", "VERSION", "API", "STORE"), [("server", server.version, server.api, server.store)]
    )


def main() -> None:
    """Run the edgecloud command line."""
    app()
