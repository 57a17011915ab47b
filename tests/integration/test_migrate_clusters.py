"""Migrating a VM to a host of another cluster: its NICs move to that cluster's networks.

Fake hosts in two clusters, a vnet in each. A running VM is refused (its addresses would
change under it); powered off, it needs a vnet of the target cluster, by nic_map or by
name; once moved its NIC has a lease of the new vnet and the old lease is free.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.waiting import wait_operation, wait_vms

RUNNING = "ACTIVE/RUNNING"


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Fast loops, fake hosts in a temp dir."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.3,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


def _site(admin: Client, name: str, subnet: str) -> tuple[int, int, int]:
    cluster = admin.clusters.create(name=name)
    host = admin.hosts.create(
        name=f"{name}-host",
        cluster_id=cluster.id,
        hypervisor="fake",
        total_cpu=8,
        total_memory_mb=8192,
    )
    vnet = admin.vnets.create(
        name=f"{name}-net",
        cluster_ids=[cluster.id],
        address_ranges=[{"ip": f"{subnet}.10", "size": 16}],
    )
    return cluster.id, host.id, vnet.id


def test_nics_follow_a_vm_to_another_cluster(admin: Client, unique: Callable[[str], str]) -> None:
    _, host_a, net_a = _site(admin, unique("site-a"), "198.18.40")
    _, host_b, net_b = _site(admin, unique("site-b"), "198.18.41")
    vm = admin.vms.create(
        template={
            "CPU": 1,
            "MEMORY": 64,
            "NIC": [{"NETWORK_ID": str(net_a)}],
            "SCHED_REQUIREMENTS": f"ID={host_a}",
        }
    )
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    with pytest.raises(EdgecloudError) as running:
        admin.vms.action(vm.id, "migrate", host_id=host_b)
    assert running.value.status == 409 and "power it off" in str(running.value)
    admin.vms.action(vm.id, "poweroff", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "POWEROFF")
    with pytest.raises(EdgecloudError) as unnamed:
        admin.vms.action(vm.id, "migrate", host_id=host_b)
    assert unnamed.value.field == "nic_map" and "does not have" in str(unnamed.value)
    with pytest.raises(EdgecloudError) as wrong:
        admin.vms.action(vm.id, "migrate", host_id=host_b, nic_map={"0": net_a})
    assert wrong.value.field == "nic_map.0"
    assert admin.vnets.leases(net_b) == []  # a refused request took nothing

    op = admin.vms.action(vm.id, "migrate", host_id=host_b, nic_map={"0": net_b}).operation
    assert op is not None
    assert wait_operation(admin, op.id) == "done"
    moved = admin.vms.get(vm.id)
    assert moved.host_id == host_b
    (nic,) = moved.template["NIC"]
    assert nic["NETWORK_ID"] == str(net_b) and nic["IP"].startswith("198.18.41.")
    assert admin.vnets.leases(net_a) == []
    assert [lease.vm_id for lease in admin.vnets.leases(net_b)] == [vm.id]
    admin.vms.action(vm.id, "resume")
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    assert admin.vnets.leases(net_b) == []
