"""The console's user and group pages, on a real front-end, as a browser uses them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from edgecloud.client import Client
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd

Unique = Callable[[str], str]


@pytest.fixture(scope="module")
def console(frontend: RunningFrontEnd) -> Iterator[ConsoleSession]:
    """The admin's console session (one login per module: argon2 is slow on purpose)."""
    with ConsoleSession(frontend.url) as session:
        assert session.login(frontend.admin_user, frontend.admin_password).status_code == 303
        yield session


def _id_of(location: str) -> int:
    found = re.fullmatch(r"/(?:users|groups)/(\d+)\?done=[a-z-]+", location)
    assert found, location
    return int(found.group(1))


def test_admin_creates_a_user_through_the_form(
    frontend: RunningFrontEnd, console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    group = admin.groups.create(name=unique("team"))
    form = console.get("/users/new")
    assert form.status_code == 200
    assert f'<option value="{group.id}">{group.name}</option>' in form.text
    name, password = unique("carol"), "pw-" + uuid.uuid4().hex

    made = console.post("/users/new", {"name": name, "password": password, "group_id": group.id})
    assert made.status_code == 303
    user_id = _id_of(made.headers["location"])
    created = admin.users.get(user_id)
    assert (created.name, created.group_id, created.enabled) == (name, group.id, True)

    page = console.http.get(made.headers["location"])
    assert page.status_code == 200
    assert "The user was created." in page.text
    assert f"User {name}" in page.text
    assert f'href="/groups/{group.id}">{group.name}</a>' in page.text
    assert "unlimited" in page.text  # the quota: no limits set

    listing = console.get("/users", name=name)
    assert f'href="/users/{user_id}">{name}</a>' in listing.text
    assert '<span class="badge ok">enabled</span>' in listing.text
    assert frontend.admin_user not in listing.text.split("<tbody>")[1]  # the name filter

    # The password set through the form works.
    with ConsoleSession(frontend.url) as session:
        assert session.login(name, password).status_code == 303


def test_bad_new_user_shows_the_reason_next_to_the_field(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    taken = unique("dave")
    admin.users.create(name=taken, password="pw-" + uuid.uuid4().hex)

    duplicate = console.post(
        "/users/new", {"name": taken, "password": "long-enough-1", "group_id": 1}
    )
    assert duplicate.status_code == 409
    assert f'id="user-name" name="name" type="text" value="{taken}"' in duplicate.text
    assert 'aria-invalid="true" aria-describedby="user-name-error"' in duplicate.text
    assert (
        f'<p class="field-error" id="user-name-error">user &#39;{taken}&#39; already exists</p>'
        in duplicate.text
    )
    assert "long-enough-1" not in duplicate.text  # a password is never sent back

    fresh = unique("erin")
    short = console.post("/users/new", {"name": fresh, "password": "short", "group_id": 1})
    assert short.status_code == 422
    assert f'value="{fresh}"' in short.text
    assert 'id="user-password-error"' in short.text
    assert "at least 8 characters" in short.text.split('id="user-password-error">')[1]
    assert admin.users.list(name=fresh) == []

    nogroup = console.post(
        "/users/new", {"name": fresh, "password": "long-enough-1", "group_id": 999}
    )
    assert nogroup.status_code == 422
    assert "group 999 does not exist" in nogroup.text.split('id="user-group_id-error">')[1]
    assert admin.users.list(name=fresh) == []


def test_membership_password_and_enable_forms(
    frontend: RunningFrontEnd, console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    extra = admin.groups.create(name=unique("extra"))
    name = unique("frank")
    user = admin.users.create(name=name, password="pw-" + uuid.uuid4().hex)
    admin.users.set_quota(user.id, vms=3)

    page = console.get(f"/users/{user.id}")
    assert f'<option value="{extra.id}">{extra.name}</option>' in page.text
    assert "<td>3</td>" in page.text  # the VM quota's limit

    joined = console.post(f"/users/{user.id}/groups", {"group_id": extra.id})
    assert joined.status_code == 303
    assert extra.id in admin.users.get(user.id).group_ids
    bad = console.post(f"/users/{user.id}/groups", {"group_id": 999})
    assert bad.status_code == 422
    assert "group 999 does not exist" in bad.text.split('id="join-group_id-error">')[1]

    confirm = console.get(f"/users/{user.id}/groups/{extra.id}/remove")
    assert f"Remove user {name} from group {extra.name}" in confirm.text
    assert console.post(f"/users/{user.id}/groups/{extra.id}/remove").status_code == 303
    assert extra.id not in admin.users.get(user.id).group_ids
    primary = console.post(f"/users/{user.id}/groups/1/remove")
    assert primary.status_code == 409
    assert "primary group" in primary.text

    short = console.post(f"/users/{user.id}/password", {"password": "tiny"})
    assert short.status_code == 422
    assert "at least 8 characters" in short.text.split('id="pw-password-error">')[1]
    assert (
        console.post(f"/users/{user.id}/password", {"password": "new-pass-123"}).status_code == 303
    )
    with ConsoleSession(frontend.url) as session:
        assert session.login(name, "new-pass-123").status_code == 303

    assert console.post(f"/users/{user.id}/enabled", {"enabled": "false"}).status_code == 303
    assert admin.users.get(user.id).enabled is False
    assert '<span class="badge off">disabled</span>' in console.get(f"/users/{user.id}").text
    admin_off = console.post("/users/0/enabled", {"enabled": "false"})
    assert admin_off.status_code == 409
    assert "cannot be disabled" in admin_off.text


def test_groups_pages_and_create_form(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    name = unique("ops")
    made = console.post("/groups", {"name": name})
    assert made.status_code == 303
    group_id = _id_of(made.headers["location"])
    member = admin.users.create(name=unique("gina"), password="pw-" + uuid.uuid4().hex)
    admin.users.add_group(member.id, group_id)

    page = console.get(f"/groups/{group_id}")
    assert page.status_code == 200
    assert f"Group {name}" in page.text
    assert f'href="/users/{member.id}">{member.name}</a>' in page.text
    assert "Quota" in page.text and "unlimited" in page.text

    listing = console.get("/groups", name=name)
    assert f'href="/groups/{group_id}">{name}</a>' in listing.text

    duplicate = console.post("/groups", {"name": name})
    assert duplicate.status_code == 409
    assert 'aria-describedby="group-name-error"' in duplicate.text
    assert "already exists" in duplicate.text.split('id="group-name-error">')[1]
    empty = console.post("/groups", {"name": ""})
    assert empty.status_code == 422
    assert 'id="group-name-error"' in empty.text


def test_non_admin_gets_the_apis_refusals(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    name, password = unique("hank"), "pw-" + uuid.uuid4().hex
    me = admin.users.create(name=name, password=password)
    other = admin.users.create(name=unique("ivy"), password="pw-" + uuid.uuid4().hex)
    with ConsoleSession(frontend.url) as session:
        assert session.login(name, password).status_code == 303
        assert 'href="/users"' not in session.get("/").text  # no admin pages in the menu

        # The API lists only themselves to a non-admin: no one else shows.
        listing = session.get("/users")
        assert listing.status_code == 200
        assert f'href="/users/{me.id}">{name}</a>' in listing.text
        assert other.name not in listing.text
        assert frontend.admin_user not in listing.text.split("<tbody>")[1]

        for path in (f"/users/{other.id}", "/users/0", "/groups/0"):
            refused = session.get(path)
            assert refused.status_code == 404, path
            assert "does not exist" in refused.text
        created = session.post("/users/new", {"name": unique("x"), "password": "long-enough-1"})
        assert created.status_code == 403
        assert "only admins can create users" in created.text
        group = session.post("/groups", {"name": unique("g")})
        assert group.status_code == 403
        assert "only admins can create groups" in group.text
        joined = session.post(f"/users/{me.id}/groups", {"group_id": 0})
        assert joined.status_code == 403
        assert 0 not in admin.users.get(me.id).group_ids
        # Their own page works, quota included.
        own = session.get(f"/users/{me.id}")
        assert own.status_code == 200 and f"User {name}" in own.text
        assert "unlimited" in own.text


def test_post_without_csrf_is_forbidden(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    name = unique("mallory")
    answer = console.http.post("/users/new", data={"name": name, "password": "long-enough-1"})
    assert answer.status_code == 403
    assert console.http.post("/groups", data={"name": name}).status_code == 403
    assert (
        console.http.post("/users/0/password", data={"password": "hijacked-1"}).status_code == 403
    )
    assert admin.users.list(name=name) == []
    assert admin.groups.list(name=name) == []
