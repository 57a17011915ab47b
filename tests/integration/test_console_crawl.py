"""Every page of the console, reached by following its own links, answers without a
server error: for an admin (who sees everything) and for a plain user (who sees little),
with objects in many states around (running, held, done; disks, NICs, a provision)."""

from __future__ import annotations

import re
import uuid
from collections import deque
from html import unescape

import pytest

from edgecloud.client import Client
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_vms

LINK = re.compile(r'href="(/[^"#]*)"')
SKIP = ("/static/", "/api/", "/docs", "/openapi.json", "/RPC2")
MOST = 400  # pages per crawl, a bound on the loop


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Fast loops; fake hosts; provisions on the fake provider."""
    return {
        "provision_drivers": {"local": "fake", "onprem": "fake", "aws": "fake"},
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def cloud(admin: Client) -> dict[str, int]:
    """A small cloud with a bit of everything."""
    tag = uuid.uuid4().hex[:6]
    cluster = admin.clusters.create(name=f"crawl-{tag}", template={"SITE": "lisbon"})
    for i in range(2):
        admin.hosts.create(
            name=f"crawl-{tag}-{i}",
            cluster_id=cluster.id,
            hypervisor="fake",
            total_cpu=16,
            total_memory_mb=32768,
        )
    image = admin.images.create(name=f"img-{tag}", datastore_id=1, size_mb=64, format="qcow2")
    group = admin.secgroups.create(name=f"fw-{tag}", rules=[{"protocol": "TCP", "range": "22"}])
    vnet = admin.vnets.create(
        name=f"lan-{tag}",
        address_ranges=[{"ip": "10.91.0.10", "size": 16}],
        security_groups=[0, group.id],
    )
    admin.clusters.add(cluster.id, "vnets", vnet.id)
    template = admin.templates.create(
        name=f"tpl-{tag}",
        template={
            "CPU": "0.5",
            "MEMORY": "64",
            "DISK": [{"IMAGE_ID": str(image.id)}, {"TYPE": "swap", "SIZE": "16"}],
            "NIC": [{"NETWORK_ID": str(vnet.id)}],
            "CONTEXT": {"NETWORK": "YES"},
        },
    )
    running = admin.templates.instantiate(template.id, name=f"run-{tag}")
    held = admin.vms.create(name=f"held-{tag}", template_id=template.id, hold=True)
    gone = admin.vms.create(name=f"gone-{tag}", template={"CPU": "0.1", "MEMORY": "32"})
    wait_vms(admin, [running.id, gone.id], lambda s: s == "ACTIVE/RUNNING", timeout=60)
    admin.vms.action(gone.id, "terminate", hard=True)
    wait_vms(admin, [gone.id], lambda s: s == "DONE", timeout=60)
    provision = admin.provisions.create(example="local-edge", inputs={"hosts": 1})
    admin.provisions.wait(provision.id, timeout=60)
    return {"running": running.id, "held": held.id, "gone": gone.id, "provision": provision.id}


# Pages only a form's choice reaches (a filter), as start points next to the dashboard.
SEEDS = ("/", "/vms?state=6", "/vms?state=2", "/provisions?all=1", "/hosts?state=MONITORED")


def crawl(console: ConsoleSession) -> dict[str, int]:
    """Follow every same-site link from the seeds (GETs only); return status by path."""
    seen: dict[str, int] = {}
    queue = deque(SEEDS)
    while queue and len(seen) < MOST:
        path = queue.popleft()
        if path in seen:
            continue
        answer = console.http.get(path)
        seen[path] = answer.status_code
        if answer.status_code != 200 or "text/html" not in answer.headers.get("content-type", ""):
            continue
        for link in LINK.findall(answer.text):
            link = unescape(link)
            if link.startswith(SKIP) or link in seen:
                continue
            queue.append(link)
    return seen


def test_admin_reaches_every_page_without_a_server_error(
    frontend: RunningFrontEnd, cloud: dict[str, int]
) -> None:
    with ConsoleSession(frontend.url) as console:
        assert console.login(frontend.admin_user, frontend.admin_password).status_code == 303
        seen = crawl(console)
    errors = {p: s for p, s in seen.items() if s >= 500}
    assert errors == {}, errors
    for page in (f"/vms/{cloud['running']}", f"/vms/{cloud['gone']}", "/hosts", "/networks"):
        assert seen.get(page) == 200, (page, seen.get(page))
    assert seen.get(f"/provisions/{cloud['provision']}") == 200
    assert len(seen) >= 40, sorted(seen)


def test_a_plain_user_meets_refusals_not_errors(
    frontend: RunningFrontEnd, admin: Client, cloud: dict[str, int]
) -> None:
    name, password = f"plain-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    with ConsoleSession(frontend.url) as console:
        assert console.login(name, password).status_code == 303
        seen = crawl(console)
        # Pages of the admin's objects, typed in: refused by the API, never a 5xx.
        for path in (
            f"/vms/{cloud['running']}",
            f"/vms/{cloud['running']}/live",
            f"/provisions/{cloud['provision']}",
            "/users/0",
            "/groups/0",
        ):
            status = console.http.get(path).status_code
            assert status in (403, 404), (path, status)
    errors = {p: s for p, s in seen.items() if s >= 500}
    assert errors == {}, errors
    assert f"/vms/{cloud['running']}" not in seen
