"""Authentication: Basic, tokens with expiry, logout, password changes, version checks."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import httpx
import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.frontend import RunningFrontEnd

Unique = Callable[[str], str]


def test_auth_file_is_private_one_auth_format(frontend: RunningFrontEnd) -> None:
    path = frontend.settings.auth_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("admin:")


def test_wrong_password_is_401(frontend: RunningFrontEnd) -> None:
    with frontend.client("admin", "wrong-password") as client, pytest.raises(EdgecloudError) as err:
        client.hosts.list()
    assert err.value.status == 401


def test_token_login_logout(frontend: RunningFrontEnd) -> None:
    client = frontend.client()
    answer = client.login(ttl_seconds=120)
    assert answer.user_name == "admin" and answer.token.startswith("ec_")
    assert client.me().id == 0
    client.logout()
    with pytest.raises(EdgecloudError) as err:
        client.me()
    assert err.value.status == 401 and "revoked" in err.value.message


def test_token_works_as_basic_secret(frontend: RunningFrontEnd) -> None:
    token = frontend.client().login().token
    with Client(frontend.url, user="admin", password=token) as client:
        assert client.me().name == "admin"
    with (
        Client(frontend.url, user="someone-else", password=token) as client,
        pytest.raises(EdgecloudError),
    ):
        client.me()


def test_expired_token_is_refused(frontend: RunningFrontEnd) -> None:
    from sqlalchemy import update

    from edgecloud.server.auth.tokens import token_digest
    from edgecloud.server.db.models import Token

    token = frontend.client().login().token
    with frontend.store.write() as session:
        session.execute(
            update(Token).where(Token.token_hash == token_digest(token)).values(expires_at=1)
        )
    with Client(frontend.url, token=token) as client, pytest.raises(EdgecloudError) as err:
        client.me()
    assert "expired" in err.value.message


def test_password_change_revokes_tokens(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    name = unique("pw")
    user = admin.users.create(name=name, password="first-password")
    client = frontend.client(name, "first-password")
    client.login()
    admin.users.set_password(user.id, "second-password")
    with pytest.raises(EdgecloudError):
        client.me()
    with frontend.client(name, "second-password") as fresh:
        assert fresh.me().name == name
    with frontend.client(name, "first-password") as stale, pytest.raises(EdgecloudError):
        stale.me()


def test_disabled_user_cannot_log_in(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    name = unique("off")
    user = admin.users.create(name=name, password="some-password")
    admin.users.update(user.id, enabled=False)
    with frontend.client(name, "some-password") as client, pytest.raises(EdgecloudError):
        client.me()


def test_passwords_are_stored_as_argon2(frontend: RunningFrontEnd) -> None:
    from sqlalchemy import select

    from edgecloud.server.db.models import User

    with frontend.store.read() as session:
        hashes = session.scalars(select(User.password_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_stale_version_is_409_not_a_lost_update(admin: Client, unique: Unique) -> None:
    cluster = admin.clusters.create(name=unique("ver"))
    admin.clusters.update(cluster.id, reserved_cpu=1, version=cluster.version)
    with pytest.raises(EdgecloudError) as err:
        admin.clusters.update(cluster.id, reserved_cpu=2, version=cluster.version)
    assert err.value.status == 409 and err.value.field == "version"
    assert admin.clusters.get(cluster.id).reserved_cpu == 1


def test_concurrent_updates_lose_nothing(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    import threading

    cluster = admin.clusters.create(name=unique("race"))
    token = admin.http.headers["Authorization"].split()[1]
    results: list[int] = []

    def bump(n: int) -> None:
        with Client(frontend.url, token=token) as client:
            for _ in range(20):
                current = client.clusters.get(cluster.id)
                try:
                    client.clusters.update(
                        cluster.id,
                        template={f"K{n}": str(current.version)},
                        version=current.version,
                    )
                    results.append(200)
                except EdgecloudError as exc:
                    results.append(exc.status)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(results) <= {200, 409}
    assert admin.clusters.get(cluster.id).version == cluster.version + results.count(200)


def test_request_id_is_echoed(frontend: RunningFrontEnd, admin: Client) -> None:
    headers = {"Authorization": admin.http.headers["Authorization"], "X-Request-Id": "abc-123"}
    response = httpx.get(frontend.url + "/api/v1/version", headers=headers)
    assert response.headers["x-request-id"] == "abc-123"
