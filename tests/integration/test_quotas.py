"""Quotas per user and group: going over one is a 4xx naming the quota and the numbers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgecloud.client import Client, EdgecloudError

Unique = Callable[[str], str]
MakeUser = Callable[..., Client]


def test_vm_quota_refuses_the_vm_over_the_limit(make_user: MakeUser, admin: Client) -> None:
    alice = make_user()
    uid = alice.me().id
    admin.users.set_quota(uid, vms=2, cpu=3, memory_mb=1024)
    alice.vms.create(template={"CPU": 1, "MEMORY": 512})
    alice.vms.create(template={"CPU": 1, "MEMORY": 256})
    with pytest.raises(EdgecloudError) as err:
        alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    assert err.value.status == 403 and err.value.field == "quota.vms"
    assert "using 2, asked for 1, limit 2" in err.value.message
    quota = alice.users.quota(uid)
    assert (quota.usage.vms, quota.usage.cpu, quota.usage.memory_mb) == (2, 2.0, 768)


def test_memory_quota_names_the_numbers(make_user: MakeUser, admin: Client) -> None:
    alice = make_user()
    admin.users.set_quota(alice.me().id, memory_mb=1000)
    with pytest.raises(EdgecloudError) as err:
        alice.vms.create(template={"CPU": 1, "MEMORY": 2048})
    assert err.value.field == "quota.memory_mb" and "limit 1000" in err.value.message


def test_terminated_vms_give_quota_back(make_user: MakeUser, admin: Client) -> None:
    alice = make_user()
    admin.users.set_quota(alice.me().id, vms=1)
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    alice.vms.action(vm.id, "terminate")
    assert alice.vms.create(template={"CPU": 1, "MEMORY": 64}).state_name == "PENDING"


def test_group_quota_covers_all_members(make_user: MakeUser, admin: Client, unique: Unique) -> None:
    team = admin.groups.create(name=unique("team"))
    admin.groups.set_quota(team.id, cpu=2)
    alice, bob = make_user(team.id), make_user(team.id)
    alice.vms.create(template={"CPU": 1.5, "MEMORY": 64})
    with pytest.raises(EdgecloudError) as err:
        bob.vms.create(template={"CPU": 1, "MEMORY": 64})
    assert err.value.field == "quota.cpu" and f"group {team.id}" in err.value.message


def test_image_and_lease_quotas(make_user: MakeUser, admin: Client, unique: Unique) -> None:
    alice = make_user()
    admin.users.set_quota(alice.me().id, images=1, leases=1)
    alice.images.create(name=unique("img"))
    with pytest.raises(EdgecloudError) as err:
        alice.images.create(name=unique("img"))
    assert err.value.field == "quota.images"
    vnet = admin.vnets.create(name=unique("net"), address_ranges=[{"ip": "198.18.3.1", "size": 8}])
    admin.vnets.chmod(vnet.id, "604")
    alice.vnets.take_lease(vnet.id)
    with pytest.raises(EdgecloudError) as err:
        alice.vnets.take_lease(vnet.id)
    assert err.value.field == "quota.leases"


def test_only_admins_set_quotas(make_user: MakeUser) -> None:
    alice = make_user()
    with pytest.raises(EdgecloudError) as err:
        alice.users.set_quota(alice.me().id, vms=100)
    assert err.value.status == 403
