"""`edgecloud operation`: the long actions the front-end carries out, and their steps."""

from typing import Annotated, Literal

import typer

from edgecloud.cli.context import cli_state
from edgecloud.cli.nouns import ObjId, noun_app
from edgecloud.cli.output import Format, print_list, print_one, print_table, when

COLUMNS = [
    ("ID", lambda o: o.id),
    ("KIND", lambda o: o.kind),
    ("OBJECT", lambda o: f"{o.object_type} {o.object_id}"),
    ("OWNER", lambda o: o.owner_id),
    ("STATE", lambda o: o.state),
    ("CREATED", lambda o: when(o.created_at)),
    ("ERROR", lambda o: o.error or None),
]
STEP_COLUMNS = ("SEQ", "STEP", "STATE", "STARTED", "ENDED", "ERROR")
app = noun_app("Operations: long actions and their steps.")
State = Literal["pending", "running", "done", "failed", "rolled_back"]
ObjectType = Literal["VM", "HOST", "IMAGE", "PROVISION"]


@app.command("list")
def list_operations(
    ctx: typer.Context,
    state: Annotated[State | None, typer.Option(help="Only in this state.")] = None,
    object_type: Annotated[ObjectType | None, typer.Option("--type", help="Object type.")] = None,
    object_id: Annotated[int | None, typer.Option("--object", min=0, help="Object id.")] = None,
) -> None:
    """List operations (yours; admins: all)."""
    cli = cli_state(ctx)
    found = cli.client.operations.list(state=state, object_type=object_type, object_id=object_id)
    print_list(cli.output, found, COLUMNS)


@app.command("show")
def show(ctx: typer.Context, obj_id: ObjId) -> None:
    """Show an operation and its steps."""
    cli = cli_state(ctx)
    operation = cli.client.operations.get(obj_id)
    print_one(cli.output, operation, exclude={"steps"})
    if cli.output is Format.TABLE and operation.steps:
        rows = [
            (s.seq, s.name, s.state, when(s.started_at), when(s.ended_at), s.error or None)
            for s in operation.steps
        ]
        print_table(STEP_COLUMNS, rows)
