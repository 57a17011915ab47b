"""The edgecloud SDK: an httpx client for the REST API, used by the CLI, console and tests."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

from edgecloud.api import common, identity, infra, network, provision, workload
from edgecloud.client.errors import EdgecloudError
from edgecloud.client.images import Images
from edgecloud.client.provisions import Provisions
from edgecloud.client.resources import (
    Acls,
    Clusters,
    Groups,
    Hosts,
    Operations,
    Owned,
    Templates,
    Users,
    Vms,
    Vnets,
)

DEFAULT_URL = "http://127.0.0.1:2474"
API = "/api/v1"


def default_home() -> Path:
    """Return $EDGECLOUD_HOME, or ~/.local/share/edgecloud."""
    env = os.environ.get("EDGECLOUD_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "edgecloud"


def read_auth_file(path: Path) -> tuple[str, str]:
    """Read OpenNebula's one_auth format: one line 'user:password'."""
    lines = path.read_text().strip().splitlines()
    if not lines:
        raise ValueError(f"{path}: empty; expected one line 'user:password'")
    line = lines[0]
    user, sep, secret = line.partition(":")
    if not sep:
        raise ValueError(f"{path}: expected one line 'user:password'")
    return user, secret


class Client:
    """A connection to one front-end, authenticated by password (Basic) or bearer token."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to `url` with a user and password, or a token."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = (
            httpx.BasicAuth(user, password) if user is not None and password is not None else None
        )
        self.http = httpx.Client(
            base_url=self.url + API,
            auth=auth,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.user = user
        self.clusters = Clusters(self, "/clusters", infra.Cluster)
        self.hosts = Hosts(self, "/hosts", infra.Host)
        self.datastores: Owned[infra.Datastore] = Owned(self, "/datastores", infra.Datastore)
        self.images = Images(self, "/images", workload.Image)
        self.vnets = Vnets(self, "/vnets", network.Vnet)
        self.secgroups: Owned[network.SecurityGroup] = Owned(
            self, "/secgroups", network.SecurityGroup
        )
        self.templates = Templates(self, "/templates", workload.VmTemplate)
        self.vms = Vms(self, "/vms", workload.Vm)
        self.operations = Operations(self)
        self.users = Users(self, "/users", identity.User)
        self.groups = Groups(self, "/groups", identity.Group)
        self.acls = Acls(self)
        self.provisions = Provisions(self, "/provisions", provision.Provision)

    @classmethod
    def from_env(cls, url: str | None = None, **kwargs: Any) -> Client:
        """Connect using EDGECLOUD_URL and EDGECLOUD_AUTH ('user:password'), else the auth file."""
        url = url or os.environ.get("EDGECLOUD_URL") or DEFAULT_URL
        token = os.environ.get("EDGECLOUD_TOKEN")
        if token:
            return cls(url, token=token, **kwargs)
        env_auth = os.environ.get("EDGECLOUD_AUTH")
        if env_auth:
            user, _, password = env_auth.partition(":")
        else:
            user, password = read_auth_file(default_home() / "auth")
        return cls(url, user=user, password=password, **kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Client:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Send a request; return the decoded JSON body, or raise EdgecloudError."""
        return self.check(self.http.request(method, path, json=json, params=params))

    def check(self, response: httpx.Response) -> Any:
        """Return a response's decoded JSON body, or raise EdgecloudError."""
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def login(self, *, ttl_seconds: int | None = None) -> common.LoginResponse:
        """Exchange the password for a bearer token and use it from now on."""
        body = {"ttl_seconds": ttl_seconds} if ttl_seconds else {}
        answer = common.LoginResponse.model_validate(self.request("POST", "/login", json=body))
        self.http.auth = None  # type: ignore[assignment]
        self.http.headers["Authorization"] = f"Bearer {answer.token}"
        return answer

    def logout(self) -> None:
        """Revoke the bearer token in use."""
        self.request("POST", "/logout")

    def version(self) -> common.Version:
        """Return the front-end's version."""
        return common.Version.model_validate(self.request("GET", "/version"))

    def events(
        self,
        *,
        kind: str | None = None,
        obj_id: int | None = None,
        owner_id: int | None = None,
        timeout: float | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Yield state changes as they happen (Server-Sent Events), until `timeout` of silence.

        The first item is {"kind": "connected"}: from then on no change is missed.
        """
        params = {
            k: v
            for k, v in {"kind": kind, "obj_id": obj_id, "owner_id": owner_id}.items()
            if v is not None
        }
        with self.http.stream(
            "GET", "/events", params=params, timeout=httpx.Timeout(10.0, read=timeout)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            for line in response.iter_lines():
                if line == ": connected":
                    yield {"kind": "connected"}
                elif line.startswith("data: "):
                    yield json.loads(line[6:])

    def me(self) -> identity.User:
        """Return the authenticated user."""
        return identity.User.model_validate(self.request("GET", "/me"))


def _error(response: httpx.Response) -> EdgecloudError:
    try:
        body = response.json()
    except ValueError:
        return EdgecloudError(response.status_code, response.text[:200] or response.reason_phrase)
    if not isinstance(body, dict):
        return EdgecloudError(response.status_code, str(body)[:200])
    return EdgecloudError(
        response.status_code,
        str(body.get("message") or body),
        code=str(body.get("error", "")),
        field=body.get("field"),
        request_id=str(body.get("request_id", "")),
        fields=[f for f in body.get("fields") or [] if isinstance(f, dict)],
    )
