"""`edgecloud user`: users, their passwords, groups and quotas."""

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
from edgecloud.cli.output import report
from edgecloud.cli.quota import add_quota_commands

USER = Noun(
    "user",
    lambda client: client.users,
    [
        ("ID", lambda u: u.id),
        ("NAME", lambda u: u.name),
        ("GROUP", lambda u: u.group_id),
        ("GROUPS", lambda u: u.group_ids),
        ("ENABLED", lambda u: u.enabled),
    ],
)
app = noun_app("Users.")
# Users have no owner or permission bits: no chmod/chown on the server.
add_common(app, USER, ("list", "show", "delete"))
add_quota_commands(app, USER)

Password = Annotated[
    str,
    typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 chars."),
]
GroupId = Annotated[int, typer.Argument(metavar="GROUP_ID", min=0, help="Group id.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="User name.")],
    password: Password,
    group: Annotated[int | None, typer.Option(min=0, help="Primary group id.")] = None,
    file: TemplateFile = None,
) -> None:
    """Create a user (asks for the password if --password is not given)."""
    state, users = USER.of(ctx)
    user = users.create(name=name, password=password, group_id=group, template=read_template(file))
    created(state, "user", user)


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    group: Annotated[int | None, typer.Option(min=0, help="New primary group id.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Let the user log in or not.")
    ] = None,
    file: TemplateFile = None,
) -> None:
    """Change a user's primary group, enabled flag or attributes."""
    body = changes(group_id=group, enabled=enabled, template=read_template(file))
    state, users = USER.of(ctx)
    updated(state, "user", obj_id, users.update(obj_id, **body))


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    obj_id: ObjId,
    password: Annotated[
        str | None, typer.Argument(metavar="PASSWORD", help="New password (asked if left out).")
    ] = None,
) -> None:
    """Set a user's password (revokes the user's tokens)."""
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    state, users = USER.of(ctx)
    users.set_password(obj_id, password)
    report(state.output, None, f"user {obj_id}: password changed")


@app.command("addgroup")
def addgroup(ctx: typer.Context, obj_id: ObjId, group_id: GroupId) -> None:
    """Add a user to a secondary group."""
    state, users = USER.of(ctx)
    user = users.add_group(obj_id, group_id)
    report(state.output, user, f"user {obj_id}: groups {','.join(map(str, user.group_ids))}")


@app.command("delgroup")
def delgroup(ctx: typer.Context, obj_id: ObjId, group_id: GroupId) -> None:
    """Remove a user from a secondary group."""
    state, users = USER.of(ctx)
    user = users.remove_group(obj_id, group_id)
    report(state.output, user, f"user {obj_id}: groups {','.join(map(str, user.group_ids))}")
