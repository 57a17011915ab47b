"""The console's VM template and datastore pages, on a real front-end, as a browser uses them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from edgecloud.client import Client
from edgecloud.client.errors import EdgecloudError
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd

Unique = Callable[[str], str]
SHAPE = {"CPU": "0.5", "VCPU": "2", "MEMORY": "256", "HYPERVISOR": "kvm"}


@pytest.fixture(scope="module")
def console(frontend: RunningFrontEnd) -> Iterator[ConsoleSession]:
    """The admin's console session (one login per module: argon2 is slow on purpose)."""
    with ConsoleSession(frontend.url) as session:
        assert session.login(frontend.admin_user, frontend.admin_password).status_code == 303
        yield session


@pytest.fixture(scope="module")
def plain(frontend: RunningFrontEnd, admin: Client) -> Iterator[ConsoleSession]:
    """A plain user's console session, the user made by the admin with a known password."""
    name, password = f"tpluser-{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    with ConsoleSession(frontend.url) as session:
        assert session.login(name, password).status_code == 303
        yield session


def _row(html: str, marker: str) -> str:
    """The table row holding `marker`."""
    at = html.index(marker)
    return html[html.rindex("<tr>", 0, at) : html.index("</tr>", at)]


def test_admin_sees_a_template_in_the_list_and_its_attributes(
    frontend: RunningFrontEnd, console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    template = admin.templates.create(
        name=unique("web"),
        template={
            **SHAPE,
            "DISK": [{"TYPE": "fs", "SIZE": "64"}, {"TYPE": "swap", "SIZE": "32"}],
            "CONTEXT": {"NETWORK": "YES", "GREETING": "hello <world>"},
        },
    )

    listing = console.get("/templates", name=template.name)
    assert listing.status_code == 200
    assert '<a href="/templates" aria-current="page">Templates</a>' in listing.text  # the nav
    row = _row(listing.text, f'href="/templates/{template.id}"')
    assert f">{template.name}</a>" in row
    assert "<td>0.5</td>" in row and "<td>2</td>" in row and "<td>256</td>" in row
    assert "<td>kvm</td>" in row and f"<td>{frontend.admin_user}</td>" in row
    assert f'href="/vms/new?template_id={template.id}"' in row
    assert "No templates match this name." in console.get("/templates", name="no-such-x").text

    page = console.get(f"/templates/{template.id}")
    assert page.status_code == 200
    text = page.text
    assert f"Template {template.name}" in text
    assert f'href="/vms/new?template_id={template.id}">Create a VM from it</a>' in text
    assert f'<code id="tpl-perms">{template.permissions}</code>' in text
    # DISK as a nested table (one row per disk), CONTEXT as a nested list of its keys.
    disks = text[text.index('<caption class="sr-only">DISK</caption>') :]
    disks = disks[: disks.index("</table>")]
    assert '<th scope="col">SIZE</th>' in disks and '<th scope="col">TYPE</th>' in disks
    assert "<td>64</td><td>fs</td>" in disks and "<td>32</td><td>swap</td>" in disks
    assert "<dt>GREETING</dt><dd>hello &lt;world&gt;</dd>" in text  # escaped
    assert "<dt>NETWORK</dt><dd>YES</dd>" in text
    assert f'action="/templates/{template.id}/chmod"' in text

    assert console.get("/templates/999999").status_code == 404


def test_admin_deletes_a_template_through_the_confirmation(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    template = admin.templates.create(name=unique("gone"), template=SHAPE)
    confirm = console.get(f"/templates/{template.id}/delete")
    assert confirm.status_code == 200
    assert f"Delete VM template {template.name} (id {template.id})?" in confirm.text
    assert f'action="/templates/{template.id}/delete"' in confirm.text

    done = console.post(f"/templates/{template.id}/delete")
    assert done.status_code == 303
    assert done.headers["location"] == f"/templates?deleted={template.id}"
    assert f"Template {template.id} deleted." in console.get(done.headers["location"]).text
    with pytest.raises(EdgecloudError) as gone:
        admin.templates.get(template.id)
    assert gone.value.status == 404

    # Deleting it again: the API's refusal on the confirmation page, with its status.
    again = console.post(f"/templates/{template.id}/delete")
    assert again.status_code == 404
    assert '<p class="error" role="alert">' in again.text


def test_a_plain_user_sees_a_template_only_once_shared(
    console: ConsoleSession, plain: ConsoleSession, admin: Client, unique: Unique
) -> None:
    template = admin.templates.create(name=unique("private"), template=SHAPE)

    assert f'href="/templates/{template.id}"' not in plain.get("/templates").text
    assert plain.get(f"/templates/{template.id}").status_code in (403, 404)
    assert plain.get(f"/templates/{template.id}/delete").status_code in (403, 404)
    refused = plain.post(f"/templates/{template.id}/delete")
    assert refused.status_code in (403, 404)
    assert '<p class="error" role="alert">' in refused.text
    assert admin.templates.get(template.id).name == template.name  # still there

    # The admin shares it for use with everyone, through the form.
    shared = console.post(f"/templates/{template.id}/chmod", {"permissions": "um-u--u--"})
    assert shared.status_code == 303
    assert shared.headers["location"] == f"/templates/{template.id}?done=chmod"
    after = console.get(shared.headers["location"]).text
    assert "The permissions were changed." in after
    assert '<code id="tpl-perms">um-u--u--</code>' in after
    assert admin.templates.get(template.id).permissions == "um-u--u--"

    listing = plain.get("/templates", name=template.name).text
    row = _row(listing, f'href="/templates/{template.id}"')
    assert f'href="/vms/new?template_id={template.id}"' in row
    seen = plain.get(f"/templates/{template.id}")
    assert seen.status_code == 200 and f"Template {template.name}" in seen.text
    assert f'href="/templates/{template.id}/delete"' not in seen.text  # use, not manage

    # Use is not manage: the API still refuses a delete and a chmod, and says so.
    refused = plain.post(f"/templates/{template.id}/delete")
    assert refused.status_code == 403
    assert '<p class="error" role="alert">' in refused.text
    chmod = plain.post(f"/templates/{template.id}/chmod", {"permissions": "uma------"})
    assert chmod.status_code == 403
    assert admin.templates.get(template.id).permissions == "um-u--u--"


def test_invalid_permissions_show_the_reason_next_to_the_field(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    template = admin.templates.create(name=unique("perms"), template=SHAPE)
    url = f"/templates/{template.id}/chmod"

    bad = console.post(url, {"permissions": "xyz"})
    assert bad.status_code == 422
    assert 'id="tpl-permissions" name="permissions" type="text" value="xyz"' in bad.text
    assert 'aria-invalid="true" aria-describedby="tpl-permissions-error' in bad.text
    reason = bad.text.split('<p class="field-error" id="tpl-permissions-error">')[1]
    assert reason.startswith("expected three octal digits")

    long = console.post(url, {"permissions": "um-u--u--u"})  # ten letters: pydantic's refusal
    assert long.status_code == 422
    assert 'id="tpl-permissions-error"' in long.text and "at most 9" in long.text
    assert admin.templates.get(template.id).permissions == template.permissions


def test_a_post_without_the_csrf_token_is_refused(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    template = admin.templates.create(name=unique("csrf"), template=SHAPE)
    forged = console.http.post(f"/templates/{template.id}/chmod", data={"permissions": "777"})
    assert forged.status_code == 403
    wrong = console.http.post(f"/templates/{template.id}/delete", data={"csrf": "nope"})
    assert wrong.status_code == 403
    kept = admin.templates.get(template.id)
    assert kept.permissions == template.permissions


def test_datastore_list_and_detail(console: ConsoleSession, admin: Client, unique: Unique) -> None:
    store = admin.datastores.create(
        name=unique("fast"),
        kind="image",
        cluster_ids=[0],
        total_mb=2048,
        template={"REPLICA_HOST": "replica-7.example"},
    )
    image = admin.images.create(name=unique("disk"), datastore_id=store.id, size_mb=1)

    listing = console.get("/datastores", name=store.name)
    assert listing.status_code == 200
    row = _row(listing.text, f'href="/datastores/{store.id}"')
    assert f">{store.name}</a>" in row and "<td>image</td>" in row
    assert 'href="/clusters/0">default</a>' in row
    assert "2.0 GiB" in row and "replica-7.example" in row
    assert f'href="/datastores/{store.id}"' not in console.get("/datastores", kind="system").text
    system = console.get("/datastores", kind="system").text
    assert "<td>system</td>" in system and "<td>image</td>" not in system
    assert console.get("/datastores", kind="tape").status_code == 422

    page = console.get(f"/datastores/{store.id}")
    assert page.status_code == 200
    text = page.text
    assert f"Datastore {store.name}" in text
    assert "<dt>Replica host</dt><dd>replica-7.example</dd>" in text
    assert f'href="/images/{image.id}">{image.name}</a>' in text
    assert f'href="/images?datastore_id={store.id}"' in text
    assert 'href="/clusters/0">default</a>' in text
    assert console.get("/datastores/999999").status_code == 404

    cluster = console.get("/clusters/0").text
    assert f'href="/datastores/{store.id}">{store.name}</a>' in cluster
