"""The commands every noun shares (list, show, delete, chmod, chown) and their arguments."""

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperGroup

from edgecloud.cli.context import CliState, cli_state
from edgecloud.cli.output import Column, fail, print_list, print_one, report, validation_text
from edgecloud.client import Client

ObjId = Annotated[int, typer.Argument(metavar="ID", min=0, help="The object's id.")]
NameFilter = Annotated[
    str | None, typer.Option("--name", help="Only objects whose name starts with this.")
]
TemplateFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Template file ('-' for stdin): OpenNebula text (KEY = \"value\") or a JSON object.",
    ),
]
M = TypeVar("M", bound=BaseModel)
COMMON = ("list", "show", "delete", "chmod", "chown")
HELP_ORDER = ("list", "show", "create", "update", "delete", "chmod", "chown")


class NounGroup(TyperGroup):
    """A noun's commands, listed in help with the CRUD ones first."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Return command names: list, show, create, ... then the noun's own ones."""
        names = super().list_commands(ctx)
        first = [name for name in HELP_ORDER if name in names]
        return first + [name for name in names if name not in first]


def noun_app(help_text: str) -> typer.Typer:
    """Return the typer app of one noun."""
    return typer.Typer(cls=NounGroup, help=help_text, no_args_is_help=True)


@dataclass(frozen=True)
class Noun:
    """What the shared commands need to know about one kind of object."""

    name: str
    resource: Callable[[Client], Any]
    columns: Sequence[Column]

    def of(self, ctx: typer.Context) -> tuple[CliState, Any]:
        """Return the invocation's state and this noun's SDK resource."""
        state = cli_state(ctx)
        return state, self.resource(state.client)


def add_common(app: typer.Typer, noun: Noun, commands: Sequence[str] = COMMON) -> None:
    """Register the shared commands of a noun on its typer app."""
    builders = {
        "list": _add_list,
        "show": _add_show,
        "delete": _add_delete,
        "chmod": _add_chmod,
        "chown": _add_chown,
    }
    for command in commands:
        builders[command](app, noun)


def list_objects(ctx: typer.Context, noun: Noun, **filters: Any) -> None:
    """Fetch every page of a noun's list with filters, and print it."""
    state, resource = noun.of(ctx)
    print_list(state.output, resource.list(**filters), noun.columns)


def _add_list(app: typer.Typer, noun: Noun) -> None:
    def list_cmd(ctx: typer.Context, name: NameFilter = None) -> None:
        list_objects(ctx, noun, name=name)

    app.command("list", help=f"List {noun.name}s.")(list_cmd)


def _add_show(app: typer.Typer, noun: Noun) -> None:
    def show(ctx: typer.Context, obj_id: ObjId) -> None:
        state, resource = noun.of(ctx)
        print_one(state.output, resource.get(obj_id))

    app.command("show", help=f"Show one {noun.name}.")(show)


def _add_delete(app: typer.Typer, noun: Noun) -> None:
    def delete(ctx: typer.Context, obj_id: ObjId) -> None:
        state, resource = noun.of(ctx)
        resource.delete(obj_id)
        report(state.output, None, f"deleted {noun.name} {obj_id}")

    app.command("delete", help=f"Delete a {noun.name}.")(delete)


def _add_chmod(app: typer.Typer, noun: Noun) -> None:
    def chmod(
        ctx: typer.Context,
        obj_id: ObjId,
        permissions: Annotated[
            str, typer.Argument(metavar="PERMISSIONS", help="'640' or 'um-u-----'.")
        ],
    ) -> None:
        state, resource = noun.of(ctx)
        obj = resource.chmod(obj_id, permissions)
        report(state.output, obj, f"{noun.name} {obj_id}: permissions {obj.permissions}")

    app.command("chmod", help=f"Change a {noun.name}'s permissions.")(chmod)


def _add_chown(app: typer.Typer, noun: Noun) -> None:
    def chown(
        ctx: typer.Context,
        obj_id: ObjId,
        owner: Annotated[int | None, typer.Option(min=0, help="New owner (user id).")] = None,
        group: Annotated[int | None, typer.Option(min=0, help="New group id.")] = None,
    ) -> None:
        if owner is None and group is None:
            raise typer.BadParameter("give --owner, --group or both")
        state, resource = noun.of(ctx)
        obj = resource.chown(obj_id, owner_id=owner, group_id=group)
        message = f"{noun.name} {obj_id}: owner {obj.owner_id}, group {obj.group_id}"
        report(state.output, obj, message)

    app.command("chown", help=f"Change a {noun.name}'s owner and/or group.")(chown)


def created(state: CliState, noun: str, obj: BaseModel) -> None:
    """Report a created object: its id for people, the object for scripts."""
    report(state.output, obj, f"created {noun} {getattr(obj, 'id', '')}".rstrip())


def updated(state: CliState, noun: str, obj_id: int, obj: BaseModel) -> None:
    """Report an updated object."""
    report(state.output, obj, f"updated {noun} {obj_id}")


def changes(**fields: Any) -> dict[str, Any]:
    """Return the fields that were given; refuse an update that changes nothing."""
    given = {key: value for key, value in fields.items() if value is not None}
    if not given:
        raise typer.BadParameter("nothing to change: give at least one option")
    return given


def read_template(path: Path | None) -> dict[str, Any] | str | None:
    """Read a template file: a JSON object if it looks like one, else OpenNebula text."""
    if path is None:
        return None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", 2)
    if not text.lstrip().startswith("{"):
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON: {exc}", 2)
    if not isinstance(data, dict):
        fail(f"{path}: a JSON template must be an object", 2)
    return data


def build(model: type[M], option: str, **fields: Any) -> M:
    """Validate a wire body built from an option; a bad value is a usage error on it."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise typer.BadParameter(validation_text(exc), param_hint=option) from None
