"""Hold the global options and build the SDK client from them when a command first needs it."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from edgecloud.cli.output import Format
from edgecloud.client import Client, read_auth_file
from edgecloud.client.client import default_home

ClientFactory = Callable[..., Client]
# The one place a command gets its Client from; tests point it at an httpx.MockTransport.
client_factory: ClientFactory = Client


class CredentialsError(Exception):
    """No usable credentials were given (no --auth, no token, no auth file)."""


def auth_file() -> Path:
    """Return the credentials file: $EDGECLOUD_HOME/auth."""
    return default_home() / "auth"


def credentials(auth: str | None, token: str | None) -> dict[str, str]:
    """Choose the credentials: --auth, else a token, else the auth file."""
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user:
            raise CredentialsError("--auth / EDGECLOUD_AUTH must be 'user:password'")
        return {"user": user, "password": password}
    if token:
        return {"token": token}
    return _file_credentials(auth_file())


def _file_credentials(path: Path) -> dict[str, str]:
    try:
        user, password = read_auth_file(path)
    except FileNotFoundError:
        raise CredentialsError(
            f"no credentials: pass --auth user:password, set EDGECLOUD_AUTH, "
            f"or write 'user:password' to {path}"
        ) from None
    except IndexError:  # an empty file has no first line
        raise CredentialsError(f"{path}: empty; expected one line 'user:password'") from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read credentials: {exc}") from None
    return {"user": user, "password": password}


@dataclass
class CliState:
    """The global options of one invocation, and the client built from them on first use."""

    url: str
    auth: str | None = None
    token: str | None = None
    output: Format = Format.TABLE
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        """Return the client, connecting with the chosen credentials on first use."""
        if self._client is None:
            self._client = client_factory(self.url, **credentials(self.auth, self.token))
        return self._client

    def close(self) -> None:
        """Close the client if one was built."""
        if self._client is not None:
            self._client.close()


def cli_state(ctx: typer.Context) -> CliState:
    """Return the state the root callback stored for this invocation."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        raise RuntimeError("the edgecloud root callback did not run")
    return state
