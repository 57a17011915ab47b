"""Suite-wide fixtures: the store backends (SQLite, and a throwaway PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pgserver import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """Start one PostgreSQL for the whole run (each test module gets its own database)."""
    if os.environ.get("EDGECLOUD_TEST_SKIP_PG"):
        pytest.skip("EDGECLOUD_TEST_SKIP_PG is set")
    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an empty store on each backend (empty string: embedded SQLite)."""
    if request.param == "sqlite":
        return ""
    pg: PostgresServer = request.getfixturevalue("pg_server")
    return pg.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh EDGECLOUD_HOME."""
    return tmp_path_factory.mktemp("edgecloud-home")
