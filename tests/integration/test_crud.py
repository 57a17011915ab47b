"""CRUD of every object through the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.waiting import wait_vms

Unique = Callable[[str], str]


def test_version_names_the_store(admin: Client, db_url: str) -> None:
    version = admin.version()
    assert version.api == "v1"
    assert version.store == ("postgresql" if db_url else "sqlite")


def test_bootstrap_objects_exist(admin: Client) -> None:
    assert admin.me().name == "admin"
    assert [c.name for c in admin.clusters.list()][:1] == ["default"]
    kinds = {d.name: d.kind for d in admin.datastores.list()}
    assert kinds["system"] == "system" and kinds["default"] == "image"
    assert admin.secgroups.get(0).name == "default"
    assert {g.name for g in admin.groups.list()} >= {"oneadmin", "users"}


def test_cluster_crud(admin: Client, unique: Unique) -> None:
    name = unique("site")
    cluster = admin.clusters.create(name=name, reserved_cpu=1, template='SITE = "lisbon"')
    assert cluster.template == {"SITE": "lisbon"}
    updated = admin.clusters.update(cluster.id, reserved_memory_mb=2048)
    assert updated.reserved_memory_mb == 2048 and updated.version == cluster.version + 1
    assert admin.clusters.get(cluster.id).name == name
    assert name in [c.name for c in admin.clusters.list(name=name)]
    admin.clusters.delete(cluster.id)
    with pytest.raises(EdgecloudError) as err:
        admin.clusters.get(cluster.id)
    assert err.value.status == 404


def test_host_crud_and_status(admin: Client, unique: Unique) -> None:
    cluster = admin.clusters.create(name=unique("site"))
    host = admin.hosts.create(
        name=unique("host"),
        cluster_id=cluster.id,
        hypervisor="kvm",
        total_cpu=8,
        total_memory_mb=16384,
    )
    assert host.state_name == "INIT" and host.cluster_id == cluster.id
    assert admin.clusters.get(cluster.id).host_ids == [host.id]
    assert admin.hosts.status(host.id, "disabled").state_name == "DISABLED"
    assert admin.hosts.status(host.id, "enabled").state_name == "INIT"
    assert [h.id for h in admin.hosts.list(cluster_id=cluster.id)] == [host.id]
    with pytest.raises(EdgecloudError) as err:
        admin.clusters.delete(cluster.id)
    assert err.value.status == 409 and "host" in err.value.message
    moved = admin.hosts.update(host.id, cluster_id=0, template={"RACK": "r1"})
    assert moved.cluster_id == 0 and moved.template == {"RACK": "r1"}
    admin.hosts.delete(host.id)
    admin.clusters.delete(cluster.id)


def test_datastore_crud_and_cluster_links(admin: Client, unique: Unique) -> None:
    cluster = admin.clusters.create(name=unique("site"))
    ds = admin.datastores.create(name=unique("ds"), kind="system", cluster_ids=[cluster.id])
    assert ds.cluster_ids == [cluster.id]
    admin.clusters.add(0, "datastores", ds.id)
    assert sorted(admin.datastores.get(ds.id).cluster_ids) == sorted([0, cluster.id])
    admin.clusters.remove(0, "datastores", ds.id)
    assert admin.datastores.get(ds.id).cluster_ids == [cluster.id]
    assert admin.datastores.update(ds.id, template={"SHARED": "NO"}).template == {"SHARED": "NO"}
    admin.datastores.delete(ds.id)
    admin.clusters.delete(cluster.id)


def test_image_crud(admin: Client, unique: Unique) -> None:
    image = admin.images.create(name=unique("img"), datastore_id=1, size_mb=512, format="qcow2")
    assert image.state_name == "READY" and image.format == "qcow2"
    assert admin.images.update(image.id, persistent=True).persistent is True
    with pytest.raises(EdgecloudError) as err:
        admin.images.create(name=unique("img"), datastore_id=0)
    assert err.value.status == 422 and err.value.field == "datastore_id"
    admin.images.delete(image.id)


def test_vnet_crud_ranges_and_leases(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("net"),
        driver="vxlan",
        address_ranges=[{"type": "IP4", "ip": "198.18.1.10", "size": 4}],
    )
    assert vnet.bridge == f"ecbr{vnet.id}" and vnet.address_ranges[0].mac == "02:00:c6:12:01:0a"
    vnet = admin.vnets.add_range(vnet.id, type="IP6", global_prefix="2001:db8:0:1::", size=8)
    assert [ar.type for ar in vnet.address_ranges] == ["IP4", "IP6"]
    with pytest.raises(EdgecloudError) as err:
        admin.vnets.add_range(vnet.id, type="IP4", ip="198.18.1.12", size=2)
    assert err.value.status == 409 and "overlap" in err.value.message
    lease = admin.vnets.take_lease(vnet.id, ip="198.18.1.12")
    assert lease.ip == "198.18.1.12" and lease.mac == "02:00:c6:12:01:0c"
    held = admin.vnets.take_lease(vnet.id, state="hold")
    assert held.ip == "198.18.1.10" and held.state == "hold"
    assert {x.id for x in admin.vnets.leases(vnet.id)} == {lease.id, held.id}
    with pytest.raises(EdgecloudError):
        admin.vnets.delete(vnet.id)
    admin.vnets.release_lease(vnet.id, lease.id)
    admin.vnets.release_lease(vnet.id, held.id)
    assert admin.vnets.remove_range(vnet.id, 1).address_ranges[0].ar_id == 0
    admin.vnets.delete(vnet.id)


def test_ipv6_and_ethernet_ranges_give_addresses(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("net6"),
        address_ranges=[
            {"type": "IP6_STATIC", "ip6": "2001:db8:1::100", "prefix_length": 64, "size": 4},
            {"type": "ETHER", "size": 2},
        ],
    )
    first = admin.vnets.take_lease(vnet.id, ar_id=0)
    assert first.ip6 == "2001:db8:1::100" and first.ip is None
    ether = admin.vnets.take_lease(vnet.id, ar_id=1)
    assert ether.ip is None and ether.ip6 is None and ether.mac.startswith("02:00:")


def test_secgroup_crud(admin: Client, unique: Unique) -> None:
    sg = admin.secgroups.create(
        name=unique("web"),
        rules=[
            {
                "protocol": "TCP",
                "direction": "inbound",
                "range": "22,80:90",
                "cidr": "198.18.0.0/15",
            }
        ],
    )
    assert sg.rules[0].range == "22,80:90"
    with pytest.raises(EdgecloudError) as err:
        admin.secgroups.update(sg.id, rules=[{"protocol": "ICMP", "range": "22"}])
    assert err.value.field == "rules[0].range"
    vnet = admin.vnets.create(name=unique("net"), security_groups=[0, sg.id])
    with pytest.raises(EdgecloudError) as err:
        admin.secgroups.delete(sg.id)
    assert err.value.status == 409
    admin.vnets.delete(vnet.id)
    admin.secgroups.delete(sg.id)


def test_template_crud_and_instantiate(admin: Client, unique: Unique) -> None:
    name = unique("tpl")
    tpl = admin.templates.create(template=f'NAME = "{name}"\nCPU = 0.5\nMEMORY = 256\nLABEL = "x"')
    assert tpl.name == name and tpl.template["CPU"] == "0.5" and tpl.template["LABEL"] == "x"
    tpl = admin.templates.update(tpl.id, template={"MEMORY": 512}, merge=True)
    assert tpl.template["MEMORY"] == "512" and tpl.template["CPU"] == "0.5"
    vm = admin.templates.instantiate(tpl.id, name=unique("vm"))
    assert (vm.cpu, vm.memory_mb, vm.template_id, vm.state_name) == (0.5, 512, tpl.id, "PENDING")
    admin.vms.action(vm.id, "terminate")
    admin.templates.delete(tpl.id)


def test_vm_crud_nics_history(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(name=unique("net"), address_ranges=[{"ip": "198.18.2.1", "size": 8}])
    vm = admin.vms.create(
        name=unique("vm"),
        template={"CPU": 1, "MEMORY": 128, "NIC": [{"NETWORK_ID": vnet.id}], "HYPERVISOR": "lxc"},
    )
    assert (
        vm.hypervisor == "lxc"
        and vm.nics[0].ip == "198.18.2.1"
        and vm.nics[0].security_groups == [0]
    )
    assert vm.id in [v.id for v in admin.vms.list()]
    renamed = admin.vms.update(vm.id, name="renamed", user_template='OWNER_TEAM = "edge"')
    assert renamed.name == "renamed" and renamed.user_template == {"OWNER_TEAM": "edge"}
    held = admin.vms.action(vm.id, "hold")
    assert held.vm.state_name == "HOLD" and held.operation is None
    admin.vms.delete(vm.id)  # delete is terminate: the record stays, DONE
    done = admin.vms.get(vm.id)
    assert done.state_name == "DONE"
    assert vm.id not in [v.id for v in admin.vms.list()]
    assert vm.id in [v.id for v in admin.vms.list(include_done=True)]
    assert admin.vnets.leases(vnet.id) == []
    assert [h.action for h in admin.vms.history(vm.id)] == ["create", "hold", "terminate"]


def test_vm_actions_needing_a_host_become_operations(admin: Client, unique: Unique) -> None:
    host = admin.hosts.create(
        name=unique("host"), hypervisor="kvm", total_cpu=4, total_memory_mb=4096
    )
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64}, hold=True)  # placed by hand below
    accepted = admin.vms.action(vm.id, "deploy", host_id=host.id)
    op = accepted.operation
    assert op is not None and op.kind == "vm.deploy" and op.params["host_id"] == host.id
    assert [s.name for s in op.steps] == ["prolog", "deploy"]
    assert admin.hosts.get(host.id).used_cpu == 1.0  # reserved when the deploy was accepted
    # The template boots nothing (no kernel, no disk): the deploy fails with a named
    # error and the VM waits in a failure state that can be recovered.
    failed = wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/BOOT_FAILURE")
    assert failed
    assert "needs OS KERNEL or a DISK" in admin.vms.get(vm.id).error
    assert admin.operations.get(op.id).state == "failed"
    with pytest.raises(EdgecloudError) as err:
        admin.vms.action(vm.id, "poweroff")
    assert err.value.status == 409 and "BOOT_FAILURE" in err.value.message
    admin.vms.action(vm.id, "recover", recover="delete")
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    assert admin.hosts.get(host.id).used_cpu == 0.0


def test_user_and_group_crud(admin: Client, unique: Unique) -> None:
    group = admin.groups.create(name=unique("team"))
    user = admin.users.create(name=unique("alice"), password="correct horse", group_id=group.id)
    assert user.group_ids == [group.id]
    user = admin.users.add_group(user.id, 1)
    assert user.group_ids == sorted([1, group.id])
    assert admin.groups.get(group.id).user_ids == [user.id]
    assert admin.users.update(user.id, template={"EMAIL": "a@example.org"}).template == {
        "EMAIL": "a@example.org"
    }
    with pytest.raises(EdgecloudError):
        admin.groups.delete(group.id)
    admin.users.remove_group(user.id, 1)
    admin.users.delete(user.id)
    admin.groups.delete(group.id)


def test_acl_crud(admin: Client) -> None:
    rule = admin.acls.create("#7 VM+NET/@1 USE+MANAGE")
    assert rule.rule == "#7 VM+NET/@1 USE+MANAGE"
    assert rule.id in [r.id for r in admin.acls.list()]
    with pytest.raises(EdgecloudError) as err:
        admin.acls.create("#7 NET+VM/@1 MANAGE+USE")
    assert err.value.status == 409
    admin.acls.delete(rule.id)


def test_operations_list_filters(admin: Client) -> None:
    ops = admin.operations.list(state="pending")
    assert all(op.state == "pending" for op in ops)


def test_chmod_chown(admin: Client, unique: Unique) -> None:
    tpl = admin.templates.create(name=unique("tpl"), template={"CPU": 1})
    assert admin.templates.chmod(tpl.id, "640").permissions == "um-u-----"
    assert admin.templates.chmod(tpl.id, "uma------").permissions == "uma------"
    assert admin.templates.chown(tpl.id, group_id=1).group_id == 1
    with pytest.raises(EdgecloudError) as err:
        admin.templates.chmod(tpl.id, "999")
    assert err.value.field == "permissions"
