"""NICs attached to and detached from VMs on fake hosts: hot-plugged while RUNNING, only
recorded while POWEROFF; a failed hotplug leaves the VM RUNNING without the NIC; bad input
is a 4xx naming the field; a detached NIC's lease is given back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edgecloud.client import Client, EdgecloudError
from edgecloud.drivers.fake import FakeHypervisor
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_operation, wait_vms

Unique = Callable[[str], str]
RUNNING = "ACTIVE/RUNNING"


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Fast loops; the fake hosts' state in a temp dir, so the test can read it."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.5,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def site(admin: Client) -> dict[str, Any]:
    """A cluster with one fake host and a vnet, and a vnet of another cluster."""
    here = admin.clusters.create(name="nic-site")
    there = admin.clusters.create(name="nic-elsewhere")
    host = admin.hosts.create(
        name="nic-fake", cluster_id=here.id, hypervisor="fake", total_cpu=8, total_memory_mb=8192
    )
    vnet = admin.vnets.create(
        name="nic-net",
        cluster_ids=[here.id],
        address_ranges=[{"type": "IP4", "ip": "198.18.60.10", "size": 20}],
    )
    far = admin.vnets.create(
        name="nic-far",
        cluster_ids=[there.id],
        address_ranges=[{"type": "IP4", "ip": "198.18.61.10", "size": 20}],
    )
    return {"host": host, "vnet": vnet, "far": far}


def _running_vm(admin: Client, site: dict[str, Any], **extra: object) -> int:
    template = {
        "CPU": 0.5,
        "MEMORY": 64,
        "HYPERVISOR": "kvm",
        "SCHED_REQUIREMENTS": f"ID={site['host'].id}",
        **extra,
    }
    vm_id = admin.vms.create(template=template).id
    wait_vms(admin, [vm_id], lambda s: s == RUNNING)
    return vm_id


def _plugged(frontend: RunningFrontEnd, site: dict[str, Any], vm_id: int) -> list[int]:
    """Return the NIC ids the fake host says are hot-plugged into the VM's guest."""
    fake = FakeHypervisor(str(frontend.settings.fake_state_dir))
    return fake.nics(site["host"].name, vm_id)


def _refused(call: Callable[[], object], status: int, field: str) -> EdgecloudError:
    with pytest.raises(EdgecloudError) as err:
        call()
    assert err.value.status == status, err.value.message
    assert err.value.field == field, err.value.message
    return err.value


def test_attach_and_detach_on_a_running_vm(
    admin: Client, site: dict[str, Any], frontend: RunningFrontEnd
) -> None:
    vnet = site["vnet"]
    vm_id = _running_vm(admin, site)
    accepted = admin.vms.attach_nic(vm_id, network_id=vnet.id)
    op = accepted.operation
    assert op is not None and op.kind == "vm.attach_nic" and op.params["nic_id"] == 0
    assert [n.nic_id for n in accepted.vm.nics] == [0]
    assert wait_operation(admin, op.id) == "done"
    second = admin.vms.attach_nic(vm_id, network=vnet.name, ip="198.18.60.25").operation
    assert second is not None and wait_operation(admin, second.id) == "done"
    vm = admin.vms.get(vm_id)
    assert vm.lcm_state_name == "RUNNING" and vm.error == ""
    assert [(n.nic_id, n.ip) for n in vm.nics] == [(0, "198.18.60.10"), (1, "198.18.60.25")]
    assert _plugged(frontend, site, vm_id) == [0, 1]
    assert sorted(lease.ip or "" for lease in admin.vnets.leases(vnet.id)) == [
        "198.18.60.10",
        "198.18.60.25",
    ]

    detached = admin.vms.detach_nic(vm_id, 0).operation
    assert detached is not None and detached.kind == "vm.detach_nic"
    assert wait_operation(admin, detached.id) == "done"
    vm = admin.vms.get(vm_id)
    assert [n.nic_id for n in vm.nics] == [1]
    assert _plugged(frontend, site, vm_id) == [1]
    assert [lease.ip for lease in admin.vnets.leases(vnet.id)] == ["198.18.60.25"]
    third = admin.vms.attach_nic(vm_id, network_id=vnet.id).operation  # ids are not reused
    assert third is not None and wait_operation(admin, third.id) == "done"
    assert [n.nic_id for n in admin.vms.get(vm_id).nics] == [1, 2]
    actions = [h.action for h in admin.vms.history(vm_id)]
    assert "nic_attach" in actions and "nic_detach" in actions
    admin.vms.action(vm_id, "terminate", hard=True)
    wait_vms(admin, [vm_id], lambda s: s == "DONE")
    assert admin.vnets.leases(vnet.id) == []


def test_a_failed_hotplug_leaves_the_vm_running_without_the_nic(
    admin: Client, site: dict[str, Any], frontend: RunningFrontEnd
) -> None:
    vm_id = _running_vm(admin, site, FAKE_FAIL="nic_attach")
    op = admin.vms.attach_nic(vm_id, network_id=site["vnet"].id).operation
    assert op is not None and wait_operation(admin, op.id) == "failed"
    vm = admin.vms.get(vm_id)
    assert vm.state_name == "ACTIVE" and vm.lcm_state_name == "RUNNING"
    assert "nic_attach" in vm.error and "failed as scripted" in vm.error
    assert vm.nics == []
    assert admin.vnets.leases(site["vnet"].id) == []
    assert _plugged(frontend, site, vm_id) == []
    admin.vms.action(vm_id, "terminate", hard=True)
    wait_vms(admin, [vm_id], lambda s: s == "DONE")


def test_a_powered_off_vm_only_records_the_nic(
    admin: Client, site: dict[str, Any], frontend: RunningFrontEnd
) -> None:
    vnet = site["vnet"]
    vm_id = _running_vm(admin, site)
    admin.vms.action(vm_id, "poweroff")
    wait_vms(admin, [vm_id], lambda s: s == "POWEROFF")
    accepted = admin.vms.attach_nic(vm_id, network_id=vnet.id)
    assert accepted.operation is None and accepted.vm.state_name == "POWEROFF"
    (nic,) = accepted.vm.nics
    assert nic.nic_id == 0 and nic.ip == "198.18.60.10"
    assert [lease.vm_id for lease in admin.vnets.leases(vnet.id)] == [vm_id]
    admin.vms.action(vm_id, "resume")
    wait_vms(admin, [vm_id], lambda s: s == RUNNING)
    assert [n.nic_id for n in admin.vms.get(vm_id).nics] == [0]
    admin.vms.action(vm_id, "poweroff")
    wait_vms(admin, [vm_id], lambda s: s == "POWEROFF")
    detached = admin.vms.detach_nic(vm_id, 0)
    assert detached.operation is None and detached.vm.nics == []
    assert admin.vnets.leases(vnet.id) == []  # given back at once
    assert _plugged(frontend, site, vm_id) == []  # the host was never asked
    admin.vms.action(vm_id, "terminate")
    wait_vms(admin, [vm_id], lambda s: s == "DONE")


def test_bad_input_is_a_4xx_naming_the_field(
    admin: Client, site: dict[str, Any], unique: Unique
) -> None:
    vm_id = _running_vm(admin, site)
    _refused(lambda: admin.vms.attach_nic(vm_id, network_id=999999), 404, "network_id")
    _refused(lambda: admin.vms.attach_nic(vm_id, network=unique("none")), 422, "network")
    _refused(lambda: admin.vms.attach_nic(vm_id), 422, "network_id")
    error = _refused(
        lambda: admin.vms.attach_nic(vm_id, network_id=site["far"].id), 422, "network_id"
    )
    assert "not in cluster" in error.message
    _refused(
        lambda: admin.vms.attach_nic(vm_id, network_id=site["vnet"].id, ip="10.0.0.1"), 422, "ip"
    )
    _refused(
        lambda: admin.vms.attach_nic(vm_id, network_id=site["vnet"].id, security_groups=[99999]),
        404,
        "security_groups",
    )
    _refused(lambda: admin.vms.detach_nic(vm_id, 3), 404, "nic_id")
    _refused(lambda: admin.vms.detach_nic(vm_id, 256), 422, "nic_id")
    assert admin.vnets.leases(site["vnet"].id) == []  # nothing was leased by a refusal
    admin.vms.action(vm_id, "suspend")
    wait_vms(admin, [vm_id], lambda s: s == "SUSPENDED")
    _refused(lambda: admin.vms.attach_nic(vm_id, network_id=site["vnet"].id), 409, "id")
    micro = admin.vms.create(
        template={
            "MEMORY": 64,
            "HYPERVISOR": "microvm",
            "SCHED_REQUIREMENTS": f"ID={site['host'].id}",
        }
    )
    wait_vms(admin, [micro.id], lambda s: s == RUNNING)
    _refused(lambda: admin.vms.attach_nic(micro.id, network_id=site["vnet"].id), 409, "id")
    for obj in (vm_id, micro.id):
        admin.vms.action(obj, "terminate", hard=True)
    wait_vms(admin, [vm_id, micro.id], lambda s: s == "DONE")
