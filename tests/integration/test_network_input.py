"""Bad network input is a 4xx naming the field, and nothing is left half made."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgecloud.client import Client
from edgecloud.client.errors import EdgecloudError

Unique = Callable[[str], str]


def _refused(call: Callable[[], object], status: int, field: str) -> EdgecloudError:
    with pytest.raises(EdgecloudError) as err:
        call()
    assert err.value.status == status, err.value.message
    assert err.value.field == field, err.value.message
    return err.value


def test_overlapping_ranges_are_refused(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("net"), address_ranges=[{"type": "IP4", "ip": "198.18.40.10", "size": 10}]
    )
    _refused(
        lambda: admin.vnets.add_range(vnet.id, type="IP4", ip="198.18.40.15", size=4), 409, "ar"
    )
    assert len(admin.vnets.get(vnet.id).address_ranges) == 1


def test_a_range_outside_the_network_is_refused(admin: Client, unique: Unique) -> None:
    template = {"NETWORK_ADDRESS": "198.18.41.0", "NETWORK_MASK": "255.255.255.0"}
    vnet = admin.vnets.create(name=unique("net"), template=template)
    error = _refused(
        lambda: admin.vnets.add_range(vnet.id, type="IP4", ip="198.18.41.250", size=10),
        422,
        "ar.ip",
    )
    assert "outside the vnet's network 198.18.41.0/24" in error.message
    admin.vnets.add_range(vnet.id, type="IP4", ip="198.18.41.10", size=10)
    name = unique("net")
    _refused(
        lambda: admin.vnets.create(
            name=name,
            template={**template, "GATEWAY": "198.18.99.1"},
        ),
        422,
        "template.GATEWAY",
    )
    assert [v for v in admin.vnets.list() if v.name == name] == []


def test_a_nic_on_a_vnet_of_another_cluster_is_refused(admin: Client, unique: Unique) -> None:
    east = admin.clusters.create(name=unique("east"))
    west = admin.clusters.create(name=unique("west"))
    ranges = [{"type": "IP4", "ip": "198.18.42.10", "size": 10}]
    a = admin.vnets.create(name=unique("a"), cluster_ids=[east.id], address_ranges=ranges)
    ranges = [{"type": "IP4", "ip": "198.18.43.10", "size": 10}]
    b = admin.vnets.create(name=unique("b"), cluster_ids=[west.id], address_ranges=ranges)
    template = {"MEMORY": 64, "NIC": [{"NETWORK_ID": a.id}, {"NETWORK_ID": b.id}]}
    error = _refused(lambda: admin.vms.create(template=template), 422, "template.NIC[1].NETWORK")
    assert "no cluster has all of its networks" in error.message
    assert admin.vnets.leases(a.id) == []  # the first NIC's lease was rolled back


def test_a_rule_with_an_invalid_port_is_refused(admin: Client, unique: Unique) -> None:
    rules = [{"protocol": "TCP", "range": "22,70000"}]
    _refused(lambda: admin.secgroups.create(name=unique("sg"), rules=rules), 422, "rules[0].range")


def test_a_reservation_is_a_vnet_of_its_own(admin: Client, unique: Unique) -> None:
    parent = admin.vnets.create(
        name=unique("pub"), address_ranges=[{"type": "IP4", "ip": "198.18.44.10", "size": 20}]
    )
    mine = admin.vnets.reserve(parent.id, size=5, ip="198.18.44.12", name=unique("mine"))
    assert mine.address_ranges[0].ip == "198.18.44.12" and mine.address_ranges[0].size == 5
    assert mine.driver == parent.driver and mine.bridge == parent.bridge
    held = admin.vnets.leases(parent.id)
    assert sorted(x.ip or "" for x in held) == [f"198.18.44.{n}" for n in range(12, 17)]
    assert {x.state for x in held} == {"hold"}
    _refused(lambda: admin.vnets.reserve(parent.id, size=3, ip="198.18.44.15"), 422, "ip")
    _refused(lambda: admin.vnets.reserve(parent.id, size=50), 409, "size")
    vm = admin.vms.create(template={"MEMORY": 64, "NIC": [{"NETWORK_ID": mine.id}]}, hold=True)
    assert admin.vms.get(vm.id).nics[0].ip == "198.18.44.12"
    admin.vms.delete(vm.id)
    admin.vnets.delete(mine.id)
    assert admin.vnets.leases(parent.id) == []  # the block went back to the parent


def test_security_groups_attach_to_and_detach_from_a_nic(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("net"), address_ranges=[{"type": "IP4", "ip": "198.18.45.10", "size": 4}]
    )
    web = admin.secgroups.create(name=unique("web"), rules=[{"protocol": "TCP", "range": "80"}])
    vm = admin.vms.create(template={"MEMORY": 64, "NIC": [{"NETWORK_ID": vnet.id}]}, hold=True)
    assert admin.vms.attach_secgroup(vm.id, 0, web.id).nics[0].security_groups == [0, web.id]
    _refused(lambda: admin.vms.attach_secgroup(vm.id, 0, web.id), 409, "id")
    _refused(lambda: admin.vms.attach_secgroup(vm.id, 3, web.id), 404, "nic_id")
    assert admin.vms.detach_secgroup(vm.id, 0, web.id).nics[0].security_groups == [0]
    _refused(lambda: admin.vms.detach_secgroup(vm.id, 0, web.id), 404, "id")
    admin.vms.delete(vm.id)
