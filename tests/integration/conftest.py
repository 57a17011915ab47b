"""Integration fixtures: a real front-end per test module and backend, reached via the SDK."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd, serve_frontend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frontend_settings() -> dict[str, object]:
    """Return settings a test module wants (override in the module)."""
    return {}


@pytest.fixture(scope="module")
def frontend(
    home: Path, db_url: str, frontend_settings: dict[str, object]
) -> Iterator[RunningFrontEnd]:
    """Serve a front-end on a fresh store for the module's tests."""
    with serve_frontend(home, db_url, **frontend_settings) as running:
        yield running


@pytest.fixture(scope="module")
def admin(frontend: RunningFrontEnd) -> Iterator[Client]:
    """Return the admin's client (logged in with a token: argon2 is paid once)."""
    client = frontend.client()
    client.login()
    yield client
    client.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a function making names unique within the module's store."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_user(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> Iterator[Callable[..., Client]]:
    """Create users on demand and return logged-in clients for them."""
    clients: list[Client] = []

    def make(group_id: int | None = None) -> Client:
        name = unique("user")
        password = "pw-" + uuid.uuid4().hex
        admin.users.create(name=name, password=password, group_id=group_id)
        client = frontend.client(name, password)
        client.login()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
