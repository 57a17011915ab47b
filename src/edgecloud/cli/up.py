"""`edgecloud up`: run the front-end in the foreground (server code is imported only here)."""

from pathlib import Path
from typing import Annotated

import typer

from edgecloud.cli.output import fail


def up(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML file (default: HOME/edgecloud.toml)."),
    ] = None,
    bind: Annotated[str | None, typer.Option(help="Address to listen on, ADDR:PORT.")] = None,
    home: Annotated[
        Path | None, typer.Option(help="State directory (default: $EDGECLOUD_HOME).")
    ] = None,
    db: Annotated[str | None, typer.Option(help="Store URL (default: SQLite in HOME).")] = None,
    local_host: Annotated[
        bool, typer.Option("--local-host", help="Register this machine as a host (once).")
    ] = False,
) -> None:
    """Start the front-end here, in the foreground; Ctrl-C stops it."""
    # Lazy: the CLI must not pull in the server (FastAPI, SQLAlchemy) for other commands.
    from edgecloud.server.config import ConfigError, load_settings
    from edgecloud.server.main import serve

    try:
        settings = load_settings(config, bind=bind, home=home, db=db)
    except ConfigError as exc:
        fail(f"configuration: {exc}", 2)
    serve(settings, local_host=local_host)
