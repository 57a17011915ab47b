"""The permission matrix: owners, groups, others, ACL rules and admins."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgecloud.client import Client, EdgecloudError

Unique = Callable[[str], str]
MakeUser = Callable[..., Client]


def _status(call: Callable[[], object]) -> int:
    with pytest.raises(EdgecloudError) as err:
        call()
    return err.value.status


def test_user_cannot_see_or_change_another_users_vm(make_user: MakeUser) -> None:
    alice, bob = make_user(), make_user()
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    assert [v.id for v in bob.vms.list()] == []
    assert _status(lambda: bob.vms.get(vm.id)) == 404
    assert _status(lambda: bob.vms.update(vm.id, name="mine")) == 404
    assert _status(lambda: bob.vms.action(vm.id, "terminate")) == 404
    assert _status(lambda: bob.vms.chmod(vm.id, "666")) == 404
    assert alice.vms.get(vm.id).name != "mine"


def test_admin_sees_every_users_vms(make_user: MakeUser, admin: Client) -> None:
    alice, bob = make_user(), make_user()
    a = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    b = bob.vms.create(template={"CPU": 1, "MEMORY": 64})
    seen = {v.id for v in admin.vms.list()}
    assert {a.id, b.id} <= seen
    assert admin.vms.action(a.id, "hold").vm.state_name == "HOLD"


def test_group_sharing_by_permission_bits(
    make_user: MakeUser, admin: Client, unique: Unique
) -> None:
    team = admin.groups.create(name=unique("team"))
    alice, bob, carol = make_user(team.id), make_user(team.id), make_user()
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    assert _status(lambda: bob.vms.get(vm.id)) == 404
    alice.vms.chmod(vm.id, "660")  # group: use + manage
    assert bob.vms.get(vm.id).id == vm.id
    assert vm.id in [v.id for v in bob.vms.list()]
    assert bob.vms.update(vm.id, name="shared").name == "shared"
    assert _status(lambda: carol.vms.get(vm.id)) == 404
    alice.vms.chmod(vm.id, "640")  # group: use only
    assert _status(lambda: bob.vms.update(vm.id, name="nope")) == 403


def test_other_bits_share_with_everyone(make_user: MakeUser) -> None:
    alice, bob = make_user(), make_user()
    tpl = alice.templates.create(name="public-tpl", template={"CPU": 1})
    alice.templates.chmod(tpl.id, "604")
    assert bob.templates.get(tpl.id).name == "public-tpl"
    vm = bob.templates.instantiate(tpl.id)
    assert vm.owner_id != tpl.owner_id


def test_acl_rule_grants_beyond_bits(make_user: MakeUser, admin: Client) -> None:
    alice, bob = make_user(), make_user()
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    bob_id = bob.me().id
    rule = admin.acls.create(f"#{bob_id} VM/#{vm.id} USE")
    try:
        bob.login()  # rules are read at authentication
        assert bob.vms.get(vm.id).id == vm.id
        assert [v.id for v in bob.vms.list()] == [vm.id]
        assert _status(lambda: bob.vms.action(vm.id, "hold")) == 403
    finally:
        admin.acls.delete(rule.id)
    assert _status(lambda: bob.vms.get(vm.id)) == 404


def test_users_cannot_create_infrastructure(make_user: MakeUser, unique: Unique) -> None:
    alice = make_user()
    assert _status(lambda: alice.hosts.create(name=unique("h"))) == 403
    assert _status(lambda: alice.clusters.create(name=unique("c"))) == 403
    assert _status(lambda: alice.users.create(name=unique("u"), password="12345678")) == 403
    assert _status(lambda: alice.acls.create("* VM/* USE")) == 403
    assert alice.vnets.create(name=unique("n")).owner_id == alice.me().id  # default ACL: NET CREATE


def test_users_see_shared_infrastructure_but_not_hosts(make_user: MakeUser) -> None:
    alice = make_user()
    assert "default" in [c.name for c in alice.clusters.list()]
    assert "default" in [d.name for d in alice.datastores.list()]
    assert alice.hosts.list() == []


def test_user_sees_only_self_and_own_groups(make_user: MakeUser, admin: Client) -> None:
    alice = make_user()
    me = alice.me()
    assert [u.id for u in alice.users.list()] == [me.id]
    assert _status(lambda: alice.users.get(0)) == 404
    assert {g.id for g in alice.groups.list()} == set(me.group_ids)


def test_only_admin_gives_objects_away(make_user: MakeUser) -> None:
    alice, bob = make_user(), make_user()
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    assert _status(lambda: alice.vms.chown(vm.id, owner_id=bob.me().id)) == 403


def test_operations_are_private(make_user: MakeUser, admin: Client) -> None:
    alice, bob = make_user(), make_user()
    host = admin.hosts.create(name="ops-host", total_cpu=64, total_memory_mb=65536)
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64}, hold=True)
    admin.vms.chown(vm.id, owner_id=alice.me().id)
    op = admin.vms.action(vm.id, "deploy", host_id=host.id).operation
    assert op is not None
    assert _status(lambda: bob.operations.get(op.id)) == 404
    assert admin.operations.get(op.id).id == op.id
