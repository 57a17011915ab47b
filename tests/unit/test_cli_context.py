"""CLI credentials, lazy client and expected errors; also the fake front-end of the CLI tests."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from edgecloud.cli import context
from edgecloud.cli.main import app
from edgecloud.client import Client

pytestmark = pytest.mark.unit

Answer = Any | Callable[[httpx.Request], Any]


class FakeFrontEnd:
    """A scripted REST front-end: answers by (method, path) and records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Answer]] = {}
        self.requests: list[httpx.Request] = []
        self.unreachable = False

    def on(self, method: str, path: str, body: Answer = None, status: int = 200) -> None:
        """Answer `method path` (path without /api/v1) with a JSON body or a function of it."""
        self.routes[(method, path)] = (status, body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request like the front-end would."""
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        key = (request.method, request.url.path.removeprefix("/api/v1"))
        if key not in self.routes:
            return httpx.Response(404, json={"error": "not_found", "message": f"no route {key}"})
        status, body = self.routes[key]
        if callable(body):
            body = body(request)
        return httpx.Response(status) if body is None else httpx.Response(status, json=body)

    def sent(self, method: str, path: str) -> Any:
        """Return the JSON body of the last request to `method path`."""
        for request in reversed(self.requests):
            if (request.method, request.url.path.removeprefix("/api/v1")) == (method, path):
                return json.loads(request.content) if request.content else None
        raise AssertionError(f"no {method} {path} was sent")

    def params(self, method: str, path: str) -> list[dict[str, str]]:
        """Return the query parameters of every request to `method path`."""
        return [
            dict(r.url.params)
            for r in self.requests
            if (r.method, r.url.path.removeprefix("/api/v1")) == (method, path)
        ]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeFrontEnd:
        """Point the CLI's client factory at this fake, with credentials in the environment."""
        transport = httpx.MockTransport(self.handle)

        def factory(url: str, **kwargs: Any) -> Client:
            return Client(url, transport=transport, **kwargs)

        monkeypatch.setattr(context, "client_factory", factory)
        monkeypatch.setenv("EDGECLOUD_AUTH", "admin:secret")
        monkeypatch.delenv("EDGECLOUD_TOKEN", raising=False)
        monkeypatch.delenv("EDGECLOUD_URL", raising=False)
        return self


def run(*args: str, stdin: str | None = None) -> Result:
    """Run the edgecloud command line in-process."""
    return CliRunner().invoke(app, list(args), input=stdin)


def owned(obj_id: int, name: str, **fields: Any) -> dict[str, Any]:
    """Return the wire fields every owned object has, plus `fields`."""
    base = {
        "id": obj_id,
        "name": name,
        "owner_id": 0,
        "group_id": 0,
        "permissions": "um-------",
        "version": 1,
        "created_at": 1_700_000_000,
        "template": {},
    }
    return base | fields


def host_data(obj_id: int, name: str, **fields: Any) -> dict[str, Any]:
    """Return a host as the REST API sends it."""
    host = {
        "cluster_id": 0,
        "hypervisor": "kvm",
        "state": 2,
        "state_name": "MONITORED",
        "total_cpu": 8.0,
        "total_memory_mb": 16384,
        "used_cpu": 2.0,
        "used_memory_mb": 1024,
        "running_vms": 1,
        "last_seen": None,
        "free_disk_mb": 0,
        "fenced": False,
    }
    return owned(obj_id, name, **(host | fields))


def vm_data(obj_id: int, name: str, **fields: Any) -> dict[str, Any]:
    """Return a VM (full form) as the REST API sends it."""
    vm = {
        "template_id": None,
        "state": 3,
        "state_name": "ACTIVE",
        "lcm_state": 3,
        "lcm_state_name": "RUNNING",
        "hypervisor": "kvm",
        "cpu": 1.0,
        "vcpu": 1,
        "memory_mb": 512,
        "disk_mb": 0,
        "host_id": 1,
        "cluster_id": 0,
        "deploy_id": "",
        "updated_at": 1_700_000_000,
    }
    return owned(obj_id, name, **(vm | fields))


def page(*items: dict[str, Any], next_cursor: int | None = None) -> dict[str, Any]:
    """Return one page of a list."""
    return {"items": list(items), "next_cursor": next_cursor}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeFrontEnd:
    """Return a fake front-end the CLI talks to."""
    return FakeFrontEnd().install(monkeypatch)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Remove every source of credentials; return the (absent) auth file's path."""
    monkeypatch.delenv("EDGECLOUD_AUTH", raising=False)
    monkeypatch.delenv("EDGECLOUD_TOKEN", raising=False)
    monkeypatch.setenv("EDGECLOUD_HOME", str(tmp_path))
    return tmp_path / "auth"


def test_cli_server_error_prints_its_message_on_stderr_and_exits_1(api: FakeFrontEnd) -> None:
    api.on("GET", "/hosts/7", {"error": "not_found", "message": "host 7 does not exist"}, 404)
    result = run("host", "show", "7")
    assert result.exit_code == 1
    assert "error: host 7 does not exist" in result.stderr
    assert result.stdout == ""


def test_cli_connection_refused_names_the_url(api: FakeFrontEnd) -> None:
    api.unreachable = True
    result = run("--url", "http://127.0.0.1:9", "vm", "list")
    assert result.exit_code == 1
    assert (
        "error: cannot reach http://127.0.0.1:9: is the front-end running? (edgecloud up)"
        in result.stderr
    )
    assert "Traceback" not in result.output


def test_cli_missing_credentials_exits_2_naming_the_auth_file(no_credentials: Path) -> None:
    result = run("host", "list")
    assert result.exit_code == 2
    assert "no credentials" in result.stderr
    assert str(no_credentials) in result.stderr.replace("\n", "")


def test_cli_empty_auth_file_is_a_clear_error(no_credentials: Path) -> None:
    no_credentials.write_text("")
    result = run("host", "list")
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_cli_auth_without_colon_is_refused(api: FakeFrontEnd) -> None:
    result = run("--auth", "admin", "host", "list")
    assert result.exit_code == 2
    assert "user:password" in result.stderr
    assert api.requests == []


def test_cli_reads_the_auth_file(monkeypatch: pytest.MonkeyPatch, no_credentials: Path) -> None:
    api = FakeFrontEnd()
    monkeypatch.setattr(
        context,
        "client_factory",
        lambda url, **kw: Client(url, transport=httpx.MockTransport(api.handle), **kw),
    )
    no_credentials.write_text("oneadmin:s3cret\n")
    api.on("GET", "/clusters", page())
    assert run("cluster", "list").exit_code == 0
    expected = "Basic " + base64.b64encode(b"oneadmin:s3cret").decode()
    assert api.requests[0].headers["Authorization"] == expected


def test_cli_token_is_sent_as_bearer(api: FakeFrontEnd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECLOUD_AUTH")
    monkeypatch.setenv("EDGECLOUD_TOKEN", "ec_abc")
    api.on("GET", "/clusters", page())
    assert run("cluster", "list").exit_code == 0
    assert api.requests[0].headers["Authorization"] == "Bearer ec_abc"


@pytest.mark.parametrize("args", [["--help"], ["vm", "--help"], ["host", "create", "--help"], []])
def test_cli_help_needs_no_credentials(no_credentials: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code in (0, 2)  # no arguments: help, with click's usage exit code
    assert "Usage" in result.output
    assert "error" not in result.stderr.lower()


def test_cli_up_with_a_bad_config_exits_2(no_credentials: Path, tmp_path: Path) -> None:
    result = run("up", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2
    assert "missing.toml" in result.stderr


def test_cli_up_serves_the_loaded_settings(
    no_credentials: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgecloud.server import main as server_main

    served: list[Any] = []
    monkeypatch.setattr(
        server_main, "serve", lambda settings, local_host: served.append((settings, local_host))
    )
    args = ("--bind", "127.0.0.1:9999", "--home", str(tmp_path), "--db", "sqlite://")
    result = run("up", *args, "--local-host")
    assert result.exit_code == 0, result.output
    ((settings, local_host),) = served
    assert local_host is True
    assert (settings.bind, settings.home, settings.db) == ("127.0.0.1:9999", tmp_path, "sqlite://")


def test_cli_import_does_not_load_server_code() -> None:
    code = (
        "import sys, edgecloud.cli.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('edgecloud.server', 'fastapi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_builds_the_client_once(api: FakeFrontEnd, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    factory = context.client_factory

    def counting(url: str, **kwargs: Any) -> Client:
        built.append(url)
        return factory(url, **kwargs)

    monkeypatch.setattr(context, "client_factory", counting)
    api.on("GET", "/version", {"version": "9.9", "api": "v1", "store": "sqlite"})
    result = run("version")
    assert result.exit_code == 0
    assert "9.9" in result.stdout
    assert built == ["http://127.0.0.1:2474"]
