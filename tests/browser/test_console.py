"""The web console in a real browser: log in, dashboard, create a VM and watch it start,
power it off and terminate it, inline form errors, isolation between users, logout."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def users(admin_client: Client) -> dict[str, str]:
    """Two plain users (name -> password) and a template both may use."""
    out = {}
    for who in ("alice", "bob"):
        password = "pw-" + uuid.uuid4().hex
        admin_client.users.create(name=who, password=password)
        out[who] = password
    template = admin_client.templates.create(
        name="slow-boot",
        # The fake hypervisor takes 3 s to boot it: long enough to see it pass through states.
        template={"CPU": "0.5", "MEMORY": "128", "FAKE_DEPLOY_DELAY": "3"},
    )
    admin_client.templates.chmod(template.id, "um-u--u--")
    return out


@pytest.fixture
def page_for(browser: Browser) -> Iterator[Any]:
    """Open pages in fresh browser contexts (own cookies), closed after the test."""
    contexts = []

    def open_page(viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def log_in(page: Page, url: str, user: str, password: str) -> None:
    """Log in with the keyboard, as a person would."""
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_admin_sees_dashboard_and_logs_out(
    console_frontend: RunningFrontEnd, page_for: Any, artifacts: Path
) -> None:
    page = page_for()
    page.goto(console_frontend.url + "/")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    log_in(page, console_frontend.url, console_frontend.admin_user, console_frontend.admin_password)
    expect(page.get_by_role("heading", name="Hosts by state")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"Hosts by state: .*2"))).to_be_visible()
    expect(page.get_by_role("link", name="edge-lisbon")).to_be_visible()
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(console_frontend.url + "/vms")  # the session is gone on the server too
    expect(page).to_have_url(re.compile(r"/login\?next=/vms"))


def test_create_vm_watch_it_run_power_off_and_terminate(
    console_frontend: RunningFrontEnd,
    users: dict[str, str],
    page_for: Any,
    admin_client: Client,
    artifacts: Path,
) -> None:
    page = page_for()
    log_in(page, console_frontend.url, "alice", users["alice"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="VMs").click()
    page.get_by_role("link", name="Create a VM").click()
    page.get_by_label("Template").select_option(label=f"slow-boot (#{slow_boot_id(admin_client)})")
    page.get_by_label("Name", exact=True).fill("web-1")
    page.get_by_label("Memory (MiB, or with M/G)").fill("lots")
    page.get_by_role("button", name="Create").click()
    # The API's refusal shows at the field, the form keeps what was typed.
    memory = page.get_by_label("Memory (MiB, or with M/G)")
    expect(memory).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-MEMORY")).to_contain_text("lots")
    expect(page.get_by_label("Name", exact=True)).to_have_value("web-1")
    assert admin_client.vms.page_short(name="web-1")[0] == []

    memory.fill("256")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=re.compile("VM web-1"))).to_be_visible()
    # Mark this document: if anything reloads the page, the mark is gone.
    page.evaluate("window.__stayed = true")
    state = page.locator("#vm-state")
    expect(state).to_have_text("RUNNING", timeout=30_000)
    assert page.evaluate("window.__stayed === true")
    vm_id = int(page.url.split("/vms/")[1].split("?")[0])
    assert admin_client.vms.get(vm_id).memory_mb == 256
    page.screenshot(path=str(artifacts / "vm.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(artifacts / "vm-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    page.get_by_role("link", name="Power off", exact=True).click()
    expect(page.get_by_text("Power off VM web-1")).to_be_visible()
    page.get_by_role("button", name="Power off").click()
    expect(state).to_have_text("POWEROFF", timeout=30_000)

    # A change made elsewhere (the API) shows here without a reload.
    page.evaluate("window.__stayed = true")
    admin_client.vms.action(vm_id, "resume")
    expect(state).to_have_text("RUNNING", timeout=30_000)
    assert page.evaluate("window.__stayed === true")

    page.get_by_role("link", name="Terminate", exact=True).click()
    page.get_by_role("button", name="Terminate").click()
    expect(state).to_have_text("DONE", timeout=30_000)
    assert admin_client.vms.get(vm_id).state_name == "DONE"


def test_user_cannot_see_another_users_vm(
    console_frontend: RunningFrontEnd,
    users: dict[str, str],
    page_for: Any,
    admin_client: Client,
) -> None:
    template = admin_client.templates.list(name="slow-boot")[0]
    alice = console_frontend.client("alice", users["alice"])
    private = alice.vms.create(name="alice-private", template_id=template.id, hold=True)
    alice.close()
    page = page_for(PHONE)
    log_in(page, console_frontend.url, "bob", users["bob"])
    page.goto(console_frontend.url + "/vms")
    expect(page.get_by_role("heading", name="VMs")).to_be_visible()
    expect(page.get_by_text("alice-private")).to_have_count(0)
    # At phone width the page does not scroll sideways (wide tables scroll in their box).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    response = page.goto(f"{console_frontend.url}/vms/{private.id}")
    assert response is not None and response.status in (403, 404)
    expect(page.get_by_text("alice-private")).to_have_count(0)
    # and bob cannot act on it either: the confirmation page is refused the same way
    response = page.goto(f"{console_frontend.url}/vms/{private.id}/confirm/terminate")
    assert response is not None and response.status in (403, 404)


def test_keyboard_reaches_the_pages(
    console_frontend: RunningFrontEnd, users: dict[str, str], page_for: Any
) -> None:
    page = page_for()
    log_in(page, console_frontend.url, "alice", users["alice"])
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # brand, then the first link of the menu
    page.keyboard.press("Tab")
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="VMs")
    ).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="VMs")).to_be_visible()


def slow_boot_id(admin: Client) -> int:
    """The id of the shared template."""
    return admin.templates.list(name="slow-boot")[0].id
