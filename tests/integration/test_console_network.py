"""The console's network and security group pages, on a real front-end, as a browser uses them."""

from __future__ import annotations

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


def _user(frontend: RunningFrontEnd, admin: Client, unique: Unique) -> tuple[str, str, Client]:
    name, password = unique("netuser"), "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    client = frontend.client(name, password)
    client.login()
    return name, password, client


def test_network_list_and_detail_show_ranges_leases_and_vms(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    group = admin.secgroups.create(name=unique("web"), rules=[{"protocol": "TCP", "range": "80"}])
    vnet = admin.vnets.create(
        name=unique("lan"),
        address_ranges=[{"ip": "10.77.0.10", "size": 8}],
        security_groups=[0, group.id],
    )
    lease = admin.vnets.take_lease(vnet.id, ip="10.77.0.12")
    vm = admin.vms.create(
        template={"CPU": 1, "MEMORY": 64, "NIC": [{"NETWORK_ID": vnet.id}]}, hold=True
    )
    vm_ip = admin.vms.get(vm.id).nics[0].ip

    listing = console.get("/networks", name=vnet.name)
    assert listing.status_code == 200
    assert f'href="/networks/{vnet.id}">{vnet.name}</a>' in listing.text
    assert "2 / 8" in listing.text  # the SDK's lease and the VM's NIC
    assert vnet.bridge in listing.text
    assert "No network you can see" in console.get("/networks", name="no-such-net-x").text

    page = console.get(f"/networks/{vnet.id}")
    assert page.status_code == 200
    text = page.text
    assert f"Network {vnet.name}" in text
    assert "10.77.0.10" in text  # the range's first address
    assert "10.77.0.12" in text and lease.mac in text  # the lease taken through the SDK
    assert vm_ip is not None and vm_ip in text
    assert f'href="/vms/{vm.id}"' in text  # the VM holding a lease is a link
    assert f'href="/secgroups/{group.id}">{group.name}</a>' in text
    assert "2 of 8" in text


def test_add_range_through_the_form(console: ConsoleSession, admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(name=unique("grow"), address_ranges=[{"ip": "10.78.0.1", "size": 4}])
    url = f"/networks/{vnet.id}/ars"

    added = console.post(url, {"type": "IP4", "ip": "10.78.1.1", "size": "16", "mac": ""})
    assert added.status_code == 303
    assert added.headers["location"] == f"/networks/{vnet.id}?done=ar-added"
    page = console.http.get(added.headers["location"])
    assert "The address range was added." in page.text
    assert "10.78.1.1" in page.text
    assert [(r.ip, r.size) for r in admin.vnets.get(vnet.id).address_ranges] == [
        ("10.78.0.1", 4),
        ("10.78.1.1", 16),
    ]

    # A bad address: the API's reason next to the field, the typed values kept.
    bad = console.post(url, {"type": "IP4", "ip": "10.78.2.999", "size": "4"})
    assert bad.status_code == 422
    assert 'id="ar-ip" name="ip" type="text" value="10.78.2.999"' in bad.text
    assert 'aria-invalid="true" aria-describedby="ar-ip-error ar-ip-hint"' in bad.text
    assert '<p class="field-error" id="ar-ip-error">not an IPv4 address</p>' in bad.text

    # A size that is not a number: pydantic's reason, next to the size field.
    nan = console.post(url, {"type": "IP4", "ip": "10.78.3.1", "size": "lots"})
    assert nan.status_code == 422
    assert 'id="ar-size-error"' in nan.text and "valid integer" in nan.text

    # An overlap names no form field: the reason goes on top of the form.
    overlap = console.post(url, {"type": "IP4", "ip": "10.78.1.5", "size": "2"})
    assert overlap.status_code == 409
    assert '<p class="error" role="alert">' in overlap.text
    assert "with range 1" in overlap.text
    assert len(admin.vnets.get(vnet.id).address_ranges) == 2


def test_remove_range_through_a_confirmation(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    vnet = admin.vnets.create(
        name=unique("shrink"),
        address_ranges=[{"ip": "10.79.0.1", "size": 4}, {"ip": "10.79.1.1", "size": 4}],
    )
    admin.vnets.take_lease(vnet.id, ar_id=0)

    confirm = console.get(f"/networks/{vnet.id}/ars/1/remove")
    assert confirm.status_code == 200
    assert f"Remove address range 1 from network {vnet.name}?" in confirm.text
    assert f'action="/networks/{vnet.id}/ars/1/remove"' in confirm.text
    done = console.post(f"/networks/{vnet.id}/ars/1/remove")
    assert done.status_code == 303
    assert [r.ar_id for r in admin.vnets.get(vnet.id).address_ranges] == [0]

    # A range with a lease: the API refuses and the confirmation page says why.
    refused = console.post(f"/networks/{vnet.id}/ars/0/remove")
    assert refused.status_code == 409
    assert "address range 0 still has 1 lease(s)" in refused.text
    assert console.get(f"/networks/{vnet.id}/ars/7/remove").status_code == 200
    assert console.post(f"/networks/{vnet.id}/ars/7/remove").status_code == 404


def test_secgroup_pages_show_rules_and_networks(
    console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    rules = [
        {"protocol": "TCP", "direction": "inbound", "range": "22,80:90", "cidr": "192.0.2.0/24"},
        {"protocol": "ICMP", "direction": "outbound", "icmp_type": 8},
    ]
    group = admin.secgroups.create(name=unique("fw"), rules=rules)
    vnet = admin.vnets.create(name=unique("guarded"), security_groups=[group.id])

    listing = console.get("/secgroups", name=group.name)
    assert listing.status_code == 200
    assert f'href="/secgroups/{group.id}">{group.name}</a>' in listing.text

    page = console.get(f"/secgroups/{group.id}")
    assert page.status_code == 200
    for text in ("22,80:90", "192.0.2.0/24", "inbound", "outbound", "ICMP", "<td>8</td>"):
        assert text in page.text
    assert f'href="/networks/{vnet.id}">{vnet.name}</a>' in page.text
    assert console.get("/secgroups/987654").status_code == 404


def test_other_users_private_network_and_group_stay_hidden(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    _, _, alice = _user(frontend, admin, unique)
    bob_name, bob_password, bob = _user(frontend, admin, unique)
    try:
        secret = alice.vnets.create(name=unique("alice-net"))
        hidden = alice.secgroups.create(name=unique("alice-fw"), rules=[{"protocol": "UDP"}])
        own = bob.vnets.create(name=unique("bob-net"))
        with ConsoleSession(frontend.url) as session:
            assert session.login(bob_name, bob_password).status_code == 303
            listing = session.get("/networks")
            assert listing.status_code == 200
            assert own.name in listing.text
            assert secret.name not in listing.text
            assert hidden.name not in session.get("/secgroups").text
            assert session.get(f"/networks/{secret.id}").status_code == 404
            assert session.get(f"/secgroups/{hidden.id}").status_code == 404
            refused = session.post(f"/networks/{secret.id}/ars", {"ip": "10.80.0.1", "size": "2"})
            assert refused.status_code == 404
            assert secret.name not in refused.text
            # Bob owns his vnet but the default permissions give him no ADMIN right on it.
            mine = session.post(f"/networks/{own.id}/ars", {"ip": "10.80.1.1", "size": "2"})
            assert mine.status_code == 403
            assert "ADMIN right on vnet" in mine.text
        assert admin.vnets.get(secret.id).address_ranges == []
    finally:
        alice.close()
        bob.close()


def test_post_without_csrf_is_forbidden(
    frontend: RunningFrontEnd, console: ConsoleSession, admin: Client, unique: Unique
) -> None:
    vnet = admin.vnets.create(name=unique("csrf"), address_ranges=[{"ip": "10.81.0.1", "size": 2}])
    url = f"/networks/{vnet.id}/ars"
    answer = console.http.post(url, data={"ip": "10.81.1.1", "size": "2"})
    assert answer.status_code == 403
    wrong = console.http.post(url, data={"csrf": "x" * 64, "ip": "10.81.1.1", "size": "2"})
    assert wrong.status_code == 403
    removal = console.http.post(f"/networks/{vnet.id}/ars/0/remove")
    assert removal.status_code == 403
    assert len(admin.vnets.get(vnet.id).address_ranges) == 1
