"""Test hosts as network namespaces with their own sshd: every test here is marked `host`.

The directory is skipped (with the reason) when the run is not root or cannot create
network namespaces, or when sshd, ssh-keygen or unshare are missing.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecloud.api.infra import Host
from edgecloud.client import Client
from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line
from edgecloud.images.tiny import Tiny, ensure_tiny
from edgecloud.server.seed import register_tiny
from tests.support.frontend import RunningFrontEnd, serve_frontend
from tests.support.guests import add_host
from tests.support.nethosts import SSHD, NetHost, NetHosts

HERE = Path(__file__).parent

NetHostsFactory = Callable[[int], list[NetHost]]


@functools.cache
def _unavailable() -> str | None:
    """Say why namespace hosts cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "namespace test hosts need root"
    for tool in ("ip", "unshare", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"namespace test hosts need {tool}"
    if not os.access(SSHD, os.X_OK):
        return f"namespace test hosts need {SSHD} (openssh-server)"
    probe = f"ech{os.getpid()}-probe"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if added.returncode != 0:
        return f"ip netns is unavailable: {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of this directory `host`; skip them where namespaces cannot run."""
    ours = [item for item in items if item.path.is_relative_to(HERE)]
    if not ours:
        return
    reason = _unavailable()
    for item in ours:
        item.add_marker(pytest.mark.host)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The front-end's key pair for this run (a temp ed25519 key)."""
    return ensure_client_key(tmp_path_factory.mktemp("client-key"))


@pytest.fixture
def nethosts(client_key: Path) -> Iterator[NetHostsFactory]:
    """Make test hosts: `nethosts(2)` returns two NetHost, removed when the test ends."""
    made: list[NetHosts] = []

    def make(count: int) -> list[NetHost]:
        net = NetHosts(count, authorized_keys=[public_key_line(client_key)])
        made.append(net)
        return net.start().hosts

    try:
        yield make
    finally:
        for net in reversed(made):
            net.close()


@pytest.fixture(scope="module")
def two_hosts(client_key: Path) -> Iterator[list[NetHost]]:
    """Two test hosts shared by a module's tests (do not break them: use `nethosts`)."""
    with NetHosts(2, authorized_keys=[public_key_line(client_key)]) as hosts:
        yield hosts


# --- a front-end with the tiny images, and the two hosts registered (one per module) ------


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    """The tiny images (built once per machine, then cached)."""
    return ensure_tiny()


@pytest.fixture(scope="module")
def frontend(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, tiny: Tiny
) -> Iterator[RunningFrontEnd]:
    """A front-end on SQLite whose SSH key the namespace hosts authorise."""
    home = tmp_path_factory.mktemp("frontend")
    (home / "ssh").mkdir()
    for name in ("id_ed25519", "id_ed25519.pub"):
        shutil.copy2(client_key.parent / name, home / "ssh" / name)
    with serve_frontend(
        home, monitor_interval=1.0, scheduler_interval=0.2, host_error_after=2
    ) as running:
        with running.store.write() as session:
            register_tiny(session, tiny)
        yield running


@pytest.fixture(scope="module")
def admin(frontend: RunningFrontEnd) -> Iterator[Client]:
    """The admin's client."""
    with frontend.client() as client:
        yield client


@pytest.fixture(scope="module")
def hosts(admin: Client, two_hosts: list[NetHost]) -> list[Host]:
    """Both namespace hosts, registered and probed."""
    return [add_host(admin, h) for h in two_hosts]
