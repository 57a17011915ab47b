"""`edgecloud group`: groups of users, and their quotas."""

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
from edgecloud.cli.quota import add_quota_commands

GROUP = Noun(
    "group",
    lambda client: client.groups,
    [
        ("ID", lambda g: g.id),
        ("NAME", lambda g: g.name),
        ("USERS", lambda g: len(g.user_ids)),
    ],
)
app = noun_app("Groups of users.")
# Groups have no owner or permission bits: no chmod/chown on the server.
add_common(app, GROUP, ("list", "show", "delete"))
add_quota_commands(app, GROUP)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.")],
    file: TemplateFile = None,
) -> None:
    """Create a group."""
    state, groups = GROUP.of(ctx)
    created(state, "group", groups.create(name=name, template=read_template(file)))


@app.command("update")
def update(ctx: typer.Context, obj_id: ObjId, file: TemplateFile = None) -> None:
    """Replace a group's attributes."""
    body = changes(template=read_template(file))
    state, groups = GROUP.of(ctx)
    updated(state, "group", obj_id, groups.update(obj_id, **body))
