"""A real front-end for tests: the ASGI app served by uvicorn on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from edgecloud.client import Client, read_auth_file
from edgecloud.server.app import create_app, prepare_store
from edgecloud.server.config import Settings, load_settings
from edgecloud.server.db.engine import Store


@dataclass
class RunningFrontEnd:
    """A front-end serving on `url`, with the admin's credentials."""

    url: str
    settings: Settings
    store: Store
    admin_user: str
    admin_password: str

    def client(self, user: str | None = None, password: str | None = None) -> Client:
        """Return an SDK client (the admin's by default)."""
        return Client(
            self.url, user=user or self.admin_user, password=password or self.admin_password
        )


@contextmanager
def serve_frontend(home: Path, db_url: str = "", **overrides: object) -> Iterator[RunningFrontEnd]:
    """Start a front-end on 127.0.0.1 with a fresh store; stop it on exit, even on failure."""
    settings = load_settings(home=home, db=db_url, bind="127.0.0.1:0", **overrides)
    store, _ = prepare_store(settings)
    app = create_app(settings, store)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="edgecloud-test-frontend", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test front-end did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        # A second front-end on a shared store finds it bootstrapped: no credentials file.
        user, password = (
            read_auth_file(settings.auth_file) if settings.auth_file.exists() else ("", "")
        )
        yield RunningFrontEnd(f"http://127.0.0.1:{port}", settings, store, user, password)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.dispose()
