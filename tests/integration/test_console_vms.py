"""The console's VM pages over HTTP: paging, filters, live fragments, the create form's
inline errors, actions behind CSRF, and what another user can see and do."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edgecloud.client import Client
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd

ROWS = re.compile(r'<tr data-vm="(\d+)">')


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Schedule fast; the fake hosts' state in a temp dir of this module and backend."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@dataclass
class People:
    """Two plain users with console sessions, and a template they may both use."""

    alice: Client
    alice_console: ConsoleSession
    bob_console: ConsoleSession
    template_id: int
    tag: str


@pytest.fixture(scope="module")
def people(frontend: RunningFrontEnd, admin: Client) -> Iterator[People]:
    """Create the users (known passwords), a fake host and a shared template."""
    tag = uuid.uuid4().hex[:6]
    admin.hosts.create(name=f"node-{tag}", hypervisor="fake", total_cpu=64, total_memory_mb=65536)
    template = admin.templates.create(name=f"tpl-{tag}", template={"CPU": "0.1", "MEMORY": "64"})
    admin.templates.chmod(template.id, "um-u--u--")
    sessions = {}
    for who in ("alice", "bob"):
        password = "pw-" + uuid.uuid4().hex
        admin.users.create(name=f"{who}-{tag}", password=password)
        session = ConsoleSession(frontend.url)
        assert session.login(f"{who}-{tag}", password).status_code == 303
        sessions[who] = (session, password)
    alice = frontend.client(f"alice-{tag}", sessions["alice"][1])
    alice.login()
    yield People(alice, sessions["alice"][0], sessions["bob"][0], template.id, tag)
    alice.close()
    for session, _ in sessions.values():
        session.close()


def held_vms(people: People, count: int, prefix: str) -> list[int]:
    """Create held VMs of alice's (they stay HOLD: nothing runs)."""
    return [
        people.alice.vms.create(name=f"{prefix}-{i}", template_id=people.template_id, hold=True).id
        for i in range(count)
    ]


def test_list_pages_searches_and_filters(people: People) -> None:
    ids = held_vms(people, 7, f"page-{people.tag}")
    console = people.alice_console
    first = console.get("/vms", name=f"page-{people.tag}", limit=3)
    assert first.status_code == 200
    assert [int(i) for i in ROWS.findall(first.text)] == ids[:3]
    found = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert found, "a Next page link"
    second = console.http.get(found.group(1).replace("&amp;", "&"))
    assert [int(i) for i in ROWS.findall(second.text)] == ids[3:6]
    assert "First page" in second.text
    # State filter: HOLD (2) lists them; RUNNING-ish ACTIVE (3) does not.
    held = console.get("/vms", name=f"page-{people.tag}", state="2", limit=50)
    assert [int(i) for i in ROWS.findall(held.text)] == ids
    assert ROWS.findall(console.get("/vms", name=f"page-{people.tag}", state="3").text) == []
    # Out-of-range input is a 4xx page, not a crash.
    assert console.get("/vms", cursor="-1").status_code == 422
    assert console.get("/vms", limit="100000").status_code == 422


def test_rows_fragment_is_etagged(people: People) -> None:
    ids = held_vms(people, 2, f"frag-{people.tag}")
    console = people.alice_console
    rows = console.get("/vms/rows", name=f"frag-{people.tag}")
    assert rows.status_code == 200 and "<html" not in rows.text
    assert [int(i) for i in ROWS.findall(rows.text)] == ids
    again = console.http.get(
        "/vms/rows",
        params={"name": f"frag-{people.tag}"},
        headers={"If-None-Match": rows.headers["etag"]},
    )
    assert again.status_code == 304
    people.alice.vms.action(ids[0], "release")
    changed = console.http.get(
        "/vms/rows",
        params={"name": f"frag-{people.tag}"},
        headers={"If-None-Match": rows.headers["etag"]},
    )
    assert changed.status_code == 200


def test_create_form_shows_errors_at_fields_and_creates(people: People) -> None:
    console = people.alice_console
    form = console.get("/vms/new")
    assert form.status_code == 200 and f"tpl-{people.tag}" in form.text
    name = f"new-{people.tag}"
    missing = console.post("/vms/new", {"name": name, "template_id": ""})
    assert missing.status_code == 422
    assert 'id="e-template_id"' in missing.text and 'aria-invalid="true"' in missing.text
    bad = console.post(
        "/vms/new", {"name": name, "template_id": str(people.template_id), "MEMORY": "lots"}
    )
    assert bad.status_code == 422
    error = re.search(r'<p class="field-error" id="e-MEMORY">([^<]+)</p>', bad.text)
    assert error and "lots" in error.group(1)
    assert f'value="{name}"' in bad.text  # what was typed stays
    assert people.alice.vms.page_short(name=name)[0] == []
    made = console.post(
        "/vms/new",
        {"name": name, "template_id": str(people.template_id), "MEMORY": "96", "hold": "on"},
    )
    assert made.status_code == 303
    vm_id = int(made.headers["location"].split("/vms/")[1].split("?")[0])
    vm = people.alice.vms.get(vm_id)
    assert (vm.name, vm.memory_mb, vm.state_name) == (name, 96, "HOLD")
    page = console.get(f"/vms/{vm_id}")
    assert page.status_code == 200 and name in page.text
    assert 'href="/vms/' + str(vm_id) + '/confirm/release"' in page.text


def test_actions_confirm_then_act_and_need_csrf(people: People) -> None:
    (vm_id,) = held_vms(people, 1, f"act-{people.tag}")
    console = people.alice_console
    confirm = console.get(f"/vms/{vm_id}/confirm/terminate")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    forged = console.http.post(f"/vms/{vm_id}/actions/terminate", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert people.alice.vms.get(vm_id).state_name == "HOLD"
    refused = console.post(f"/vms/{vm_id}/actions/reboot")  # not in HOLD: the API says why
    assert 400 <= refused.status_code < 500
    assert 'role="alert"' in refused.text
    assert console.get(f"/vms/{vm_id}/confirm/explode").status_code == 404
    done = console.post(f"/vms/{vm_id}/actions/terminate")
    assert done.status_code == 303
    assert people.alice.vms.get(vm_id).state_name == "DONE"


def test_another_user_sees_and_does_nothing(people: People) -> None:
    (vm_id,) = held_vms(people, 1, f"private-{people.tag}")
    bob = people.bob_console
    listing = bob.get("/vms", name=f"private-{people.tag}")
    assert listing.status_code == 200 and ROWS.findall(listing.text) == []
    assert f'href="/vms/{vm_id}"' not in bob.get("/vms", limit=200).text
    for path in ("", "/live", "/console", "/confirm/terminate"):
        answer = bob.get(f"/vms/{vm_id}{path}")
        assert answer.status_code in (403, 404), path
        assert f"private-{people.tag}" not in answer.text
    acted = bob.post(f"/vms/{vm_id}/actions/terminate")
    assert acted.status_code in (403, 404)
    assert people.alice.vms.get(vm_id).state_name == "HOLD"
    # The dashboard counts only what bob may see: none of alice's VMs.
    dashboard = bob.get("/")
    total = re.search(r'<p class="stat" id="vm-total">(\d+)</p>', dashboard.text)
    assert total and total.group(1) == "0"
    mine = people.alice_console.get("/")
    total = re.search(r'<p class="stat" id="vm-total">(\d+)</p>', mine.text)
    assert total and int(total.group(1)) >= 1


def test_session_cookie_reads_the_api_but_never_writes(
    frontend: RunningFrontEnd, people: People
) -> None:
    console = people.alice_console
    me = console.http.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["name"] == f"alice-{people.tag}"
    write = console.http.post("/api/v1/vms", json={"template_id": people.template_id})
    assert write.status_code == 401
    # Nor does it on the XML-RPC endpoint: only the API's GETs take the cookie.
    rpc = console.http.post(
        "/RPC2", content=b"<methodCall><methodName>one.system.version</methodName></methodCall>"
    )
    assert b"<boolean>0</boolean>" in rpc.content or rpc.status_code >= 400


def test_login_redirects_only_locally_and_logout_revokes(
    frontend: RunningFrontEnd, admin: Client
) -> None:
    name, password = f"carol-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    with ConsoleSession(frontend.url) as console:
        form = console.http.get("/login", params={"next": "//evil.example/"})
        assert 'name="next" value="/"' in form.text
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        answer = console.http.post(
            "/login",
            data={
                "csrf": token.group(1),
                "username": name,
                "password": password,
                "next": "//evil.example/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert "httponly" in answer.headers["set-cookie"].lower()
        assert "samesite=strict" in answer.headers["set-cookie"].lower()
        session_token = console.http.cookies["edgecloud_session"]
        found = re.search(r'name="csrf" value="([^"]+)"', console.get("/").text)
        assert found
        console.csrf = found.group(1)
        assert console.post("/logout").status_code == 303
        revoked = console.http.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {session_token}"}
        )
        assert revoked.status_code == 401
        assert console.get("/").status_code == 303
    # Without the login form's own cookie (a forged cross-site post) the login is refused.
    with ConsoleSession(frontend.url) as forged:
        answer = forged.http.post(
            "/login", data={"csrf": "x", "username": name, "password": password}
        )
        assert answer.status_code == 400 and "edgecloud_session" not in forged.http.cookies


def test_disk_snapshot_forms_show_the_apis_reasons(people: People, admin: Client) -> None:
    image = admin.images.create(
        name=f"disk-{people.tag}", datastore_id=1, size_mb=64, format="qcow2"
    )
    admin.images.chmod(image.id, "um-u--u--")
    vm = people.alice.vms.create(
        name=f"disked-{people.tag}",
        template={"CPU": "0.1", "MEMORY": "64", "DISK": [{"IMAGE_ID": str(image.id)}]},
    )
    console = people.alice_console
    page = console.get(f"/vms/{vm.id}")
    assert page.status_code == 200 and f"disk-{people.tag}" in page.text
    form = console.get(f"/vms/{vm.id}/disks/0/snapshot")
    assert form.status_code == 200 and 'id="f-name"' in form.text
    bad = console.post(f"/vms/{vm.id}/disks/0/snapshot", {"name": "no spaces"})
    assert bad.status_code == 422 and 'id="e-name"' in bad.text
    assert 'value="no spaces"' in bad.text
    # The fake host keeps no qcow2 files: the API says so, on top of the form.
    refused = console.post(f"/vms/{vm.id}/disks/0/snapshot", {"name": "s1"})
    assert 400 <= refused.status_code < 500 and 'role="alert"' in refused.text
    confirm = console.get(f"/vms/{vm.id}/disks/0/snapshots/s1/revert")
    assert confirm.status_code == 200 and "Revert" in confirm.text
    assert console.get(f"/vms/{vm.id}/disks/0/snapshots/s1/explode").status_code == 422
    assert people.bob_console.get(f"/vms/{vm.id}/disks/0/snapshot").status_code in (403, 404)
    forged = people.bob_console.post(f"/vms/{vm.id}/disks/0/snapshots/s1/delete")
    assert forged.status_code in (403, 404)
    people.alice.vms.action(vm.id, "terminate", hard=True)
