"""Browser fixtures: a front-end with fake hosts, and Debian's Chromium driven by Playwright.

Chromium is the system binary (/usr/bin/chromium, installed by `make test`); Playwright
never downloads a browser. Screenshots go to $EDGECLOUD_ARTIFACTS (default:
artifacts/console under the repository), kept after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd, serve_frontend

CHROMIUM = os.environ.get("EDGECLOUD_CHROMIUM", "/usr/bin/chromium")
# Headless and quiet: no GPU, no sandbox (root), and none of Chromium's own network traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Return the directory the browser tests save screenshots in."""
    default = Path(__file__).resolve().parents[2] / "artifacts" / "console"
    path = Path(os.environ.get("EDGECLOUD_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def console_frontend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFrontEnd]:
    """A front-end on SQLite with two fake hosts."""
    home = tmp_path_factory.mktemp("console-home")
    with serve_frontend(home, monitor_interval=1) as running:
        admin = running.client()
        admin.login()
        cluster = admin.clusters.create(name="edge-lisbon", template={"PROVIDER": "onprem"})
        for i in range(2):
            admin.hosts.create(
                name=f"fake-{i}",
                cluster_id=cluster.id,
                hypervisor="fake",
                total_cpu=8,
                total_memory_mb=16384,
            )
        admin.close()
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (the system's), closed after the module."""
    if not Path(CHROMIUM).exists() or shutil.which("chromedriver") is None:
        pytest.fail(f"{CHROMIUM} or chromedriver missing: `make test` installs chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def admin_client(console_frontend: RunningFrontEnd) -> Iterator[Client]:
    """The admin's SDK client, for setting up and checking what the browser did."""
    client = console_frontend.client()
    client.login()
    yield client
    client.close()
