"""Render what commands return: rich tables for people, JSON or YAML for scripts."""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn

import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

Column = tuple[str, Callable[[Any], object]]
# Keys holding seconds since the epoch: shown as local times in key/value tables.
TIME_KEYS = frozenset({"at", "last_seen", "expires_at"})
PIPE_WIDTH = 240  # piped output is not wrapped at 80 columns, so grep sees whole rows


class Format(StrEnum):
    """How a command prints its result."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def console(*, stderr: bool = False) -> Console:
    """Return a console on the current stdout (or stderr), wide when not a terminal."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def plain(value: Any) -> Any:
    """Turn a wire object (or a list of them) into JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def print_data(fmt: Format, data: Any) -> None:
    """Print data as JSON or YAML (a table format falls back to JSON)."""
    data = plain(data)
    if fmt is Format.YAML:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print rows under headers as a rich table; cells are text, never markup."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell_text(cell)) for cell in row))
    console().print(table)


def print_list(fmt: Format, items: Sequence[BaseModel], columns: Sequence[Column]) -> None:
    """Print a list: a table of the given columns, or every field as JSON/YAML."""
    if fmt is not Format.TABLE:
        print_data(fmt, list(items))
        return
    rows = ([get(item) for _, get in columns] for item in items)
    print_table([header for header, _ in columns], rows)


def print_one(fmt: Format, item: BaseModel, exclude: Set[str] = frozenset()) -> None:
    """Print one object: a key/value table (without `exclude`), or every field as JSON/YAML."""
    if fmt is not Format.TABLE:
        print_data(fmt, item)
        return
    fields = item.model_dump(mode="json", exclude=set(exclude))
    rows = [(key.upper(), field_text(key, value)) for key, value in fields.items()]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), Text(value))
    console().print(table)


def report(fmt: Format, item: BaseModel | None, message: str) -> None:
    """Print a short message for people, or the object a change returned for scripts."""
    if fmt is Format.TABLE or item is None:
        typer.echo(message)
    else:
        print_data(fmt, item)


def cell_text(value: object) -> str:
    """Return the text of one table cell: '-' for nothing, lists joined by commas."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def field_text(key: str, value: Any) -> str:
    """Return the text of one field of a key/value table."""
    if key.endswith("_at") or key in TIME_KEYS:
        return when(value)
    if isinstance(value, Mapping):
        return "\n".join(f"{k}={_compact(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        return "\n".join(_compact(v) for v in value)
    return cell_text(value)


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):  # nested objects: leave out the fields that are not set
        value = {k: v for k, v in value.items() if v is not None}
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def when(seconds: object) -> str:
    """Format seconds since the epoch as a local time ('-' for none)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return cell_text(seconds)
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def mib(megabytes: float) -> str:
    """Format MiB the way OpenNebula does: 512M, 1.5G, 2T."""
    for unit, size in (("T", 1024 * 1024), ("G", 1024)):
        if megabytes >= size:
            return f"{megabytes / size:.1f}".removesuffix(".0") + unit
    return f"{megabytes:g}M"


def number(value: float) -> str:
    """Format a CPU amount without a useless '.0'."""
    return f"{value:g}"


def print_error(message: str) -> None:
    """Print 'error: message' in red on stderr."""
    console(stderr=True).print(Text(f"error: {message}", style="red"))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error and end the command with an exit code."""
    print_error(message)
    raise typer.Exit(code)


def validation_text(exc: ValidationError) -> str:
    """Summarise a pydantic error as 'field: reason; ...'."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)
