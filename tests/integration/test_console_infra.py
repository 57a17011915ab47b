"""The console's infrastructure pages: clusters, hosts (live, graphs, status) and images."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_vms

Unique = Callable[[str], str]


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Monitor and schedule fast, with the fake hosts' state in a temp dir (one per backend)."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@dataclass
class Site:
    """A cluster with one fake host running one VM whose disk is an image."""

    cluster_id: int
    cluster_name: str
    host_id: int
    host_name: str
    vm_id: int
    vm_name: str
    image_id: int
    image_name: str


@pytest.fixture(scope="module")
def site(admin: Client) -> Site:
    """Build the site; wait until the host is monitored and the VM runs on it."""
    tag = uuid.uuid4().hex[:6]
    cluster = admin.clusters.create(name=f"edge-{tag}")
    host = admin.hosts.create(
        name=f"node-{tag}",
        cluster_id=cluster.id,
        hypervisor="fake",
        total_cpu=8,
        total_memory_mb=16384,
    )
    image = admin.images.create(name=f"disk-{tag}", datastore_id=1, size_mb=512, format="qcow2")
    vm_name = f"web-{tag}"
    vm = admin.vms.create(
        template={"NAME": vm_name, "CPU": 1, "MEMORY": 256, "DISK": [{"IMAGE_ID": str(image.id)}]}
    )
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING")
    deadline = time.monotonic() + 20
    while (
        admin.hosts.get(host.id).state_name != "MONITORED"
        or len(admin.hosts.monitoring(host.id)) < 2
    ):
        assert time.monotonic() < deadline, "the fake host was never monitored"
        time.sleep(0.1)
    return Site(cluster.id, cluster.name, host.id, host.name, vm.id, vm_name, image.id, image.name)


@pytest.fixture(scope="module")
def console(frontend: RunningFrontEnd) -> Iterator[ConsoleSession]:
    """The admin's browser session."""
    with ConsoleSession(frontend.url) as session:
        assert session.login(frontend.admin_user, frontend.admin_password).status_code == 303
        yield session


@pytest.fixture(scope="module")
def user_console(frontend: RunningFrontEnd, admin: Client) -> Iterator[ConsoleSession]:
    """A plain user's browser session (a user the admin created, with a password)."""
    name, password = f"viewer-{uuid.uuid4().hex[:6]}", "S3cret-" + uuid.uuid4().hex[:10]
    admin.users.create(name=name, password=password)
    with ConsoleSession(frontend.url) as session:
        assert session.login(name, password).status_code == 303
        yield session


def _row(html: str, name: str) -> str:
    """The table row naming `name`."""
    found = re.search(
        r"<tr>(?:(?!</tr>).)*>" + re.escape(name) + r"<(?:(?!</tr>).)*</tr>", html, re.S
    )
    assert found, f"no row for {name}"
    return found.group(0)


def test_hosts_list_shows_the_host_with_state_and_capacity(
    console: ConsoleSession, site: Site
) -> None:
    page = console.get("/hosts")
    assert page.status_code == 200
    assert 'data-watch="host"' in page.text and 'data-refresh="host:*"' in page.text
    row = _row(page.text, site.host_name)
    assert f'href="/hosts/{site.host_id}"' in row and site.cluster_name in row
    assert 'class="badge ok">MONITORED<' in row and "fake" in row
    assert "/ 8.0" in row and "16.0 GiB" in row and " ago" in row

    assert site.host_name in console.get("/hosts", name=site.host_name[:8]).text
    assert site.host_name not in console.get("/hosts", name="nothing-like-it").text
    assert site.host_name not in console.get("/hosts", state="DISABLED").text
    assert site.host_name in console.get("/hosts", state="MONITORED").text


def test_host_rows_fragment_is_etagged(console: ConsoleSession, site: Site) -> None:
    first = console.get("/hosts/rows", name=site.host_name)
    assert first.status_code == 200 and site.host_name in first.text
    assert "<html" not in first.text
    again = console.http.get(
        "/hosts/rows",
        params={"name": site.host_name},
        headers={"If-None-Match": first.headers["ETag"]},
    )
    # Unchanged content (the `ago` column may move by a second between the two reads).
    assert again.status_code in (200, 304)


def test_host_page_shows_facts_graphs_and_vms(console: ConsoleSession, site: Site) -> None:
    page = console.get(f"/hosts/{site.host_id}")
    assert page.status_code == 200
    text = page.text
    assert f"Host {site.host_name}" in text and 'id="host-state">MONITORED<' in text
    assert f'data-refresh="host:{site.host_id}"' in text
    assert "Node version" in text and "Capacity used" in text and 'class="gauge"' in text
    # Monitored at least twice: the graphs are drawn, with the host's capacity as their top.
    assert "CPU used: now" in text and "(of 8 CPU)" in text and "<polyline" in text
    assert "Memory used: now" in text and "(of 16384 MiB)" in text
    row = _row(text, site.vm_name)
    assert "RUNNING" in row and f'href="/vms/{site.vm_id}"' in row
    for value in ("3600", "21600", "86400"):
        assert f'value="{value}"' in text
    assert 'value="21600" selected' in console.get(f"/hosts/{site.host_id}", seconds=21600).text
    assert console.get(f"/hosts/{site.host_id}", seconds=999_999).status_code == 422

    live = console.get(f"/hosts/{site.host_id}/live")
    assert live.status_code == 200 and "MONITORED" in live.text and "<html" not in live.text
    assert console.get("/hosts/99999").status_code == 404


def test_cluster_pages_list_the_host(console: ConsoleSession, site: Site) -> None:
    listing = console.get("/clusters")
    row = _row(listing.text, site.cluster_name)
    assert f'href="/clusters/{site.cluster_id}"' in row and "/ 8.0" in row

    page = console.get(f"/clusters/{site.cluster_id}")
    assert page.status_code == 200
    assert f"Cluster {site.cluster_name}" in page.text
    host_row = _row(page.text, site.host_name)
    assert "MONITORED" in host_row and f'href="/hosts/{site.host_id}"' in host_row
    assert "of 8 CPU" in page.text  # the capacity gauge

    default = console.get("/clusters/0").text
    assert 'href="/images?datastore_id=1"' in default  # its datastores, linked


def test_disable_a_host_through_the_confirmation(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    host = admin.hosts.create(name=unique("spare"), hypervisor="fake", total_cpu=2)
    form = console.get(f"/hosts/{host.id}/status", status="disabled")
    assert form.status_code == 200
    assert f'action="/hosts/{host.id}/status"' in form.text
    assert 'name="status" value="disabled"' in form.text and "Disable host" in form.text

    done = console.post(f"/hosts/{host.id}/status", {"status": "disabled"})
    assert done.status_code == 303 and done.headers["location"] == f"/hosts/{host.id}"
    assert admin.hosts.get(host.id).state_name == "DISABLED"
    assert 'id="host-state">DISABLED<' in console.get(f"/hosts/{host.id}").text
    assert host.name in console.get("/hosts", state="DISABLED").text

    wrong = console.post(f"/hosts/{host.id}/status", {"status": "asleep"})
    assert wrong.status_code == 422
    assert 'role="alert"' in wrong.text and "status" in wrong.text
    assert admin.hosts.get(host.id).state_name == "DISABLED"


def test_image_pages_and_deletion(console: ConsoleSession, admin: Client, site: Site) -> None:
    listing = console.get("/images")
    row = _row(listing.text, site.image_name)
    assert "qcow2" in row and "512 MiB" in row and "USED" in row and "default" in row

    page = console.get(f"/images/{site.image_id}")
    assert page.status_code == 200
    assert f"Image {site.image_name}" in page.text and 'id="image-state">USED<' in page.text
    assert "Used by</dt><dd>1 VM<" in page.text

    # In use: the API refuses, the confirmation page says why with the API's status.
    assert "Delete image" in console.get(f"/images/{site.image_id}/delete").text
    refused = console.post(f"/images/{site.image_id}/delete")
    assert refused.status_code == 409
    assert 'role="alert"' in refused.text and "is used by 1 VM" in refused.text
    assert admin.images.get(site.image_id).state_name == "USED"

    spare = admin.images.create(name=f"old-{uuid.uuid4().hex[:6]}", datastore_id=1, size_mb=1)
    done = console.post(f"/images/{spare.id}/delete")
    assert done.status_code == 303 and done.headers["location"] == f"/images?deleted={spare.id}"
    with pytest.raises(EdgecloudError) as gone:
        admin.images.get(spare.id)
    assert gone.value.status == 404
    after = console.http.get(done.headers["location"])
    assert f"Image {spare.id} deleted." in after.text and spare.name not in after.text


def test_a_user_sees_only_what_the_api_shows_them(
    user_console: ConsoleSession, admin: Client, site: Site
) -> None:
    hosts = user_console.get("/hosts")
    assert hosts.status_code == 200 and site.host_name not in hosts.text
    assert user_console.get(f"/hosts/{site.host_id}").status_code == 404
    assert user_console.get(f"/hosts/{site.host_id}/status", status="disabled").status_code == 404
    assert site.image_name not in user_console.get("/images").text
    assert user_console.get(f"/images/{site.image_id}").status_code == 404
    clusters = user_console.get("/clusters").text
    assert "default" in clusters

    refused = user_console.post(f"/hosts/{site.host_id}/status", {"status": "disabled"})
    assert 400 <= refused.status_code < 500
    assert admin.hosts.get(site.host_id).state_name == "MONITORED"


def test_a_user_who_may_use_a_host_may_not_administer_it(
    user_console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    host = admin.hosts.create(name=unique("shared"), hypervisor="fake", total_cpu=2)
    admin.hosts.chmod(host.id, "um-u--u--")  # others may USE (see) it, not ADMIN it
    assert host.name in user_console.get("/hosts").text
    assert user_console.get(f"/hosts/{host.id}").status_code == 200

    refused = user_console.post(f"/hosts/{host.id}/status", {"status": "offline"})
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text and "Set offline host" in refused.text
    assert admin.hosts.get(host.id).state_name != "OFFLINE"


def test_posts_without_the_csrf_token_are_forbidden(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    host = admin.hosts.create(name=unique("guarded"), hypervisor="fake", total_cpu=2)
    image = admin.images.create(name=unique("guarded"), datastore_id=1, size_mb=1)
    bare = console.http.post(f"/hosts/{host.id}/status", data={"status": "offline"})
    assert bare.status_code == 403
    forged = console.http.post(
        f"/hosts/{host.id}/status", data={"status": "offline", "csrf": "0" * 64}
    )
    assert forged.status_code == 403
    assert admin.hosts.get(host.id).state_name != "OFFLINE"
    assert console.http.post(f"/images/{image.id}/delete").status_code == 403
    assert admin.images.get(image.id).name == image.name
