"""Turn the errors a user can expect into one red line and an exit code, never a traceback."""

from typing import Any

import httpx
import typer
from typer.core import TyperGroup

from edgecloud.cli.context import CliState, CredentialsError
from edgecloud.cli.output import fail
from edgecloud.client import EdgecloudError

OUTPUT_FLAGS = ("-o", "--output")


class GuardedGroup(TyperGroup):
    """The root command: reports server, connection and credential errors as messages."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Accept -o/--output anywhere before '--', as if given before the noun."""
        return super().parse_args(ctx, hoist_output(args))

    def invoke(self, ctx: Any) -> Any:
        """Run the command; an expected error becomes 'error: ...' with exit 1 (2: usage)."""
        try:
            return super().invoke(ctx)
        except EdgecloudError as exc:
            fail(exc.message or f"HTTP {exc.status}")
        except CredentialsError as exc:
            fail(str(exc), 2)
        except httpx.ConnectError:
            fail(f"cannot reach {_url(ctx)}: is the front-end running? (edgecloud up)")
        except httpx.TimeoutException:
            fail(f"{_url(ctx)} did not answer in time")
        except httpx.HTTPError as exc:
            fail(f"{_url(ctx)}: {exc}")


def _url(ctx: typer.Context) -> str:
    state = ctx.obj
    return state.url if isinstance(state, CliState) else "the front-end"


def hoist_output(args: list[str]) -> list[str]:
    """Move -o/--output (and its value) to the front so it works after the noun too."""
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in OUTPUT_FLAGS and i + 1 < len(args):
            moved.extend(args[i : i + 2])
            i += 2
            continue
        if arg.startswith("--output=") or (arg.startswith("-o") and len(arg) > 2):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return moved + rest
