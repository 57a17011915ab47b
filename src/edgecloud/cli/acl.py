"""`edgecloud acl`: ACL rules in OpenNebula's syntax."""

from typing import Annotated

import typer

from edgecloud.cli.nouns import Noun, ObjId, add_common, created, noun_app
from edgecloud.cli.output import fail, print_list, print_one

ACL = Noun("acl", lambda client: client.acls, [("ID", lambda a: a.id), ("RULE", lambda a: a.rule)])
app = noun_app("ACL rules, e.g. '@1 VM+NET/* USE'.")
# The server lists all rules at once and has no per-rule read, update, chmod or chown.
add_common(app, ACL, ("delete",))


@app.command("list")
def list_acls(ctx: typer.Context) -> None:
    """List ACL rules."""
    state, acls = ACL.of(ctx)
    print_list(state.output, acls.list(), ACL.columns)


@app.command("show")
def show(ctx: typer.Context, obj_id: ObjId) -> None:
    """Show one ACL rule."""
    state, acls = ACL.of(ctx)
    rule = next((acl for acl in acls.list() if acl.id == obj_id), None)
    if rule is None:
        fail(f"acl {obj_id} not found")
    print_one(state.output, rule)


@app.command("create")
def create(
    ctx: typer.Context,
    rule: Annotated[
        str,
        typer.Argument(metavar="RULE", help="Rule like '@1 VM+NET/* USE' or '#5 IMAGE/#3 USE'."),
    ],
) -> None:
    """Add an ACL rule."""
    state, acls = ACL.of(ctx)
    created(state, "acl", acls.create(rule))
