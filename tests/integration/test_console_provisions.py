"""The console's provision pages, on the fake provider (hosts run the fake hypervisor).

A provision is made through the create form (check, inputs, create), followed on its page
to RUNNING with its step log, and deleted through the confirmation page; bad templates show
their errors at the fields they name; another user sees nothing; forms need their CSRF token.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest

from edgecloud.client import Client
from edgecloud.provision import example
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd

FAKE = {"local": "fake", "onprem": "fake", "aws": "fake"}
TYPED = """
name: typed-${input.site}
provider: aws
inputs:
  - {name: site, default: lab, description: The site's short name.}
  - {name: hosts, type: number, default: 1}
  - {name: spread, type: boolean, default: true}
  - {name: size, type: list, options: [small, large], default: small}
  - {name: secret, type: password}
provider_settings: {secret_access_key: "${input.secret}", size: "${input.size}"}
cluster: {name: "${provision_id}-typed"}
hosts: {count: "${input.hosts}", hypervisors: [kvm]}
"""


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "provision_drivers": FAKE,
        "monitor_interval": 0.2,
        "scheduler_interval": 0.1,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def browser(frontend: RunningFrontEnd) -> Iterator[ConsoleSession]:
    with ConsoleSession(frontend.url) as session:
        assert session.login(frontend.admin_user, frontend.admin_password).status_code == 303
        yield session


def _wait_final(browser: ConsoleSession, prov_id: int, timeout: float = 60) -> str:
    """Poll the log fragment as the page does until it says final; return it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = browser.get(f"/provisions/{prov_id}/log")
        assert answer.status_code == 200, answer.text
        if "data-final" in answer.text:
            return answer.text
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def _field_error(html: str, field_id: str) -> str:
    """The error shown at a field: the <p> its aria-describedby names."""
    tag = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{re.escape(field_id)}"[^>]*>', html)
    assert tag, f"no field {field_id}"
    assert 'aria-invalid="true"' in tag.group(0), tag.group(0)
    described = re.search(r'aria-describedby="([^"]*)"', tag.group(0))
    assert described, tag.group(0)
    texts = []
    for ref in described.group(1).split():
        found = re.search(rf'<p class="field-error" id="{re.escape(ref)}">(.*?)</p>', html, re.S)
        if found:
            texts.append(re.sub(r"<[^>]+>", "", found.group(1)))
    assert texts, f"no error at {field_id}"
    return " ".join(texts)


def test_create_follow_and_delete_through_the_console(
    browser: ConsoleSession, admin: Client
) -> None:
    form = browser.get("/provisions/new")
    assert form.status_code == 200
    assert '<option value="local-edge">' in form.text and 'name="template"' in form.text
    # Check: the example's inputs come back as fields, with their defaults.
    checked = browser.post("/provisions/new", {"action": "check", "example": "local-edge"})
    assert checked.status_code == 200, checked.text
    assert re.search(
        r'<input type="text" id="input-site" name="input.site" value="lab"', checked.text
    )
    assert re.search(
        r'<input type="number" id="input-hosts" name="input.hosts" value="3"', checked.text
    )
    assert "Checked: the template is valid" in checked.text and "edge-lab" in checked.text
    assert 'value="create"' in checked.text
    # Create, with the inputs typed.
    site = "c" + uuid.uuid4().hex[:6]
    fields = {"example": "local-edge", "template": "", "stage": "inputs"}
    made = browser.post(
        "/provisions/new",
        {**fields, "action": "create", "input.site": site, "input.hosts": "1"},
    )
    assert made.status_code == 303, made.text
    found = re.fullmatch(r"/provisions/(\d+)\?done=created", made.headers["location"])
    assert found, made.headers["location"]
    prov_id = int(found.group(1))
    shown = browser.get(f"/provisions/{prov_id}", done="created")
    assert shown.status_code == 200
    assert f"Provision edge-{site}" in shown.text and "Provision created" in shown.text
    assert (
        f'data-src="/provisions/{prov_id}/log"' in shown.text and 'data-poll="1000"' in shown.text
    )
    assert 'data-refresh="provision:' in shown.text
    # The step log until final: every step with its log text.
    log = _wait_final(browser, prov_id)
    assert "The provision is RUNNING" in log
    for step in ("hosts", "configure", "register", "monitor"):
        assert f"create · {step} " in log, step
    assert '<pre class="log">' in log and "registered cluster" in log
    first = browser.get(f"/provisions/{prov_id}/log")
    etag = first.headers["ETag"]
    again = browser.http.get(f"/provisions/{prov_id}/log", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    # The page: state, hosts and objects made, the actions RUNNING allows.
    page = browser.get(f"/provisions/{prov_id}").text
    done = admin.provisions.get(prov_id)
    assert done.state_name == "RUNNING" and done.cluster_id is not None
    assert 'id="provision-state">RUNNING<' in page
    assert f'<a href="/clusters/{done.cluster_id}">' in page
    assert (
        f"{done.tag}-host-0" in page
        and f"{done.tag}-host-1" not in page
        and f"{done.tag}-private" in page
    )
    for action in ("scale", "configure", "delete"):
        assert f'href="/provisions/{prov_id}/{action}"' in page
    assert f'href="/provisions/{prov_id}/retry"' not in page
    # Scale: a wrong count is shown at its field; a good one runs, followed by the log.
    scale = browser.get(f"/provisions/{prov_id}/scale")
    assert scale.status_code == 200 and 'id="hosts" name="hosts"' in scale.text
    assert 'value="1"' in scale.text  # the current count
    zero = browser.post(f"/provisions/{prov_id}/scale", {"hosts": "0"})
    assert zero.status_code == 422 and "greater than or equal to 1" in _field_error(
        zero.text, "hosts"
    )
    retry = browser.post(f"/provisions/{prov_id}/retry", {})
    assert retry.status_code == 409
    assert re.search(r'<p class="error" role="alert">[^<]*only ERROR ones', retry.text)
    scaled = browser.post(f"/provisions/{prov_id}/scale", {"hosts": "2"})
    assert scaled.status_code == 303
    log = _wait_final(browser, prov_id)
    assert "The provision is RUNNING" in log and "scale · hosts " in log
    assert len(admin.provisions.get(prov_id).hosts) == 2
    # The list and its live region.
    listed = browser.get("/provisions")
    assert listed.status_code == 200 and 'data-refresh="provision:*"' in listed.text
    assert f'<a href="/provisions/{prov_id}">edge-{site}</a>' in listed.text
    live = browser.get("/provisions/live")
    assert f"edge-{site}" in live.text and "RUNNING" in live.text and "ETag" in live.headers
    # Delete through its confirmation page.
    confirm = browser.get(f"/provisions/{prov_id}/delete")
    assert confirm.status_code == 200
    assert 'name="force"' in confirm.text and '<label for="force">' in confirm.text
    deleting = browser.post(f"/provisions/{prov_id}/delete", {})
    assert deleting.status_code == 303
    assert deleting.headers["location"] == f"/provisions/{prov_id}?done=delete"
    assert "The provision is DONE" in _wait_final(browser, prov_id)
    assert admin.provisions.get(prov_id).state_name == "DONE"
    assert f"edge-{site}" not in browser.get("/provisions").text
    assert f"edge-{site}" in browser.get("/provisions", all="1").text


def test_inputs_get_their_html_types_and_errors_show_at_their_fields(
    browser: ConsoleSession, admin: Client
) -> None:
    before = len(admin.provisions.list(all=True))
    checked = browser.post("/provisions/new", {"action": "check", "template": TYPED})
    assert checked.status_code == 200, checked.text  # the password is to fill in, not an error
    text = checked.text
    assert re.search(
        r'<input type="checkbox" id="input-spread" name="input.spread" value="true" checked', text
    )
    assert re.search(r'<select id="input-size" name="input.size"', text)
    assert '<option value="large">large</option>' in text
    assert re.search(r'<input type="password" id="input-secret" name="input.secret" value=""', text)
    assert re.search(r'<input type="number" id="input-hosts" name="input.hosts" value="1"', text)
    assert '<label for="input-site">site</label>' in text and "The site&#39;s short name." in text
    # Wrong values are shown at their inputs, the rest as typed.
    typed = {"action": "check", "template": TYPED, "stage": "inputs", "input.site": "x1"}
    wrong = browser.post("/provisions/new", {**typed, "input.hosts": "many", "input.size": "tiny"})
    assert wrong.status_code == 422
    assert "not a number" in _field_error(wrong.text, "input-hosts")
    assert "not one of small, large" in _field_error(wrong.text, "input-size")
    assert "no value given" in _field_error(wrong.text, "input-secret")
    assert 'id="input-site" name="input.site" value="x1"' in wrong.text
    spread = re.search(r'<input type="checkbox" id="input-spread"[^>]*>', wrong.text)
    assert spread and "checked" not in spread.group(0)  # unticked, as sent
    # A template in error: its YAML paths at the textarea, the text kept; nothing created.
    bad = TYPED.replace("hypervisors: [kvm]", "hypervisors: [kvm], colour: blue")
    refused = browser.post(
        "/provisions/new",
        {"action": "create", "template": bad, "stage": "inputs", "input.secret": "s"},
    )
    assert refused.status_code == 422, refused.text
    assert "hosts.colour" in _field_error(refused.text, "template")
    assert "colour: blue" in refused.text
    syntax = browser.post("/provisions/new", {"action": "check", "template": "name: [unclosed"})
    assert syntax.status_code == 422 and "YAML" in _field_error(syntax.text, "template")
    nothing = browser.post("/provisions/new", {"action": "check"})
    assert nothing.status_code == 422
    assert "give the template" in _field_error(nothing.text, "template")
    unknown = browser.post("/provisions/new", {"action": "check", "example": "no-such"})
    assert unknown.status_code == 422 and "no example" in _field_error(unknown.text, "example")
    copy = browser.get("/provisions/new", copy="local-edge")
    assert re.search(r'<textarea id="template"[^>]*>[^<]*name: edge-\$\{input.site\}', copy.text)
    assert len(admin.provisions.list(all=True)) == before


def test_the_inputs_drawn_are_the_apis_even_for_a_refused_template(
    browser: ConsoleSession, admin: Client
) -> None:
    before = len(admin.provisions.list(all=True))
    # A password with a default: the default is never shown, and left empty it is used.
    quiet = TYPED.replace(
        "{name: secret, type: password}", "{name: secret, type: password, default: d3fault-pw}"
    )
    checked = browser.post("/provisions/new", {"action": "check", "template": quiet})
    assert checked.status_code == 200, checked.text
    outside = re.sub(r"<textarea[^>]*>.*?</textarea>", "", checked.text, flags=re.S)
    assert "Checked: the template is valid" in outside and "d3fault-pw" not in outside
    assert re.search(
        r'<input type="password" id="input-secret" name="input.secret" value=""', checked.text
    )
    assert "leave it empty for its default" in checked.text
    # A template refused on a first check (an unknown key, an input without a value): the
    # inputs are drawn all the same, the missing value not called an error yet.
    bad = TYPED.replace("hypervisors: [kvm]", "hypervisors: [kvm], colour: blue")
    refused = browser.post("/provisions/new", {"action": "check", "template": bad})
    assert refused.status_code == 422, refused.text
    assert "hosts.colour" in _field_error(refused.text, "template")
    assert re.search(
        r'<input type="number" id="input-hosts" name="input.hosts" value="1"', refused.text
    )
    secret = re.search(r'<input type="password" id="input-secret"[^>]*>', refused.text)
    assert secret and "aria-invalid" not in secret.group(0)
    # An inputs section that cannot be read: its error at the template, no inputs drawn.
    broken = TYPED.replace("type: list", "type: colour")
    unread = browser.post("/provisions/new", {"action": "check", "template": broken})
    assert unread.status_code == 422
    assert "inputs[3].type" in _field_error(unread.text, "template")
    assert 'id="input-site"' not in unread.text and 'value="create"' not in unread.text
    assert len(admin.provisions.list(all=True)) == before


def test_another_user_sees_nothing_and_forms_need_their_token(
    browser: ConsoleSession, admin: Client, frontend: RunningFrontEnd
) -> None:
    made = admin.provisions.create(example="local-edge", inputs={"hosts": "1", "site": "hide"})
    also = admin.provisions.create(example="local-edge", inputs={"hosts": "1", "site": "hide2"})
    name, password = f"user-{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    with ConsoleSession(frontend.url) as other:
        assert other.login(name, password).status_code == 303
        assert other.get(f"/provisions/{made.id}").status_code in (403, 404)
        assert other.get(f"/provisions/{made.id}/log").status_code in (403, 404)
        assert other.get(f"/provisions/{made.id}/delete").status_code in (403, 404)
        listed = other.get("/provisions")
        assert listed.status_code == 200 and "edge-hide" not in listed.text
        assert "No provisions you can see" in listed.text
        refused = other.post(f"/provisions/{made.id}/delete", {"force": "1"})
        assert refused.status_code in (403, 404)
        # A plain user may check a template, not create one: the API's refusal on top.
        form = {"example": "local-edge", "stage": "inputs", "input.hosts": "1"}
        denied = other.post("/provisions/new", {**form, "action": "create"})
        assert denied.status_code == 403
        assert re.search(r'<p class="error" role="alert">[^<]*HOST', denied.text), denied.text
    # Paging keeps the filters: one provision a page, deleted ones included.
    first = browser.get("/provisions", all="1", limit="1")
    assert first.status_code == 200 and "First page" not in first.text
    next_url = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', first.text)
    assert next_url, first.text
    assert "all=1" in next_url.group(1) and "limit=1" in next_url.group(1)
    second = browser.http.get(next_url.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and "First page" in second.text
    ids = [re.findall(r'<a href="/provisions/(\d+)">', r.text) for r in (first, second)]
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]
    # Without the CSRF token every form is refused, and nothing happens.
    count = len(admin.provisions.list(all=True))
    bare = browser.http.post("/provisions/new", data={"action": "create", "example": "local-edge"})
    assert bare.status_code == 403
    assert len(admin.provisions.list(all=True)) == count
    forged = browser.http.post(f"/provisions/{made.id}/delete", data={"csrf": "x", "force": "1"})
    assert forged.status_code == 403
    for prov_id in (made.id, also.id):
        assert admin.provisions.wait(prov_id, timeout=60).state_name == "RUNNING"
        admin.provisions.delete(prov_id)
        assert admin.provisions.wait(prov_id, timeout=60).state_name == "DONE"


def test_a_failed_step_shows_its_error_and_retry_resumes_it(
    browser: ConsoleSession, admin: Client
) -> None:
    text = example("local-edge").replace(
        "provider: local", "provider: local\nprovider_settings: {fail_once: create_hosts}"
    )
    form = {"template": text, "stage": "inputs", "input.site": "failing", "input.hosts": "1"}
    made = browser.post("/provisions/new", {**form, "action": "create"})
    assert made.status_code == 303, made.text
    prov_id = int(made.headers["location"].split("/")[2].split("?")[0])
    log = _wait_final(browser, prov_id)
    assert "The provision is ERROR" in log and "FAILED: " in log
    assert re.search(r'create · hosts <span class="badge bad">failed</span>', log)
    page = browser.get(f"/provisions/{prov_id}").text
    assert "create_hosts failed as asked" in page and 'class="badge bad"' in page
    assert f'href="/provisions/{prov_id}/retry"' in page
    assert f'href="/provisions/{prov_id}/scale"' not in page
    confirm = browser.get(f"/provisions/{prov_id}/retry")
    assert confirm.status_code == 200 and "at its step hosts" in confirm.text
    assert browser.post(f"/provisions/{prov_id}/retry", {}).status_code == 303
    assert "The provision is RUNNING" in _wait_final(browser, prov_id)
    assert browser.post(f"/provisions/{prov_id}/delete", {"force": "1"}).status_code == 303
    assert "The provision is DONE" in _wait_final(browser, prov_id)
