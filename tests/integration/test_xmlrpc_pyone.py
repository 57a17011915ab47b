"""pyone 7.3.80, unchanged, drives a whole scenario through /RPC2 (fake hosts: the `dummy`
drivers), and gets OpenNebula's exceptions where OpenNebula would raise them. Every
document is also fetched raw and validated against OpenNebula's XSDs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pyone
import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "monitor_interval": 0.2,
        "scheduler_interval": 0.1,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def _vm_state(one: Any, vm_id: int) -> tuple[int, int]:
    vm = one.vm.info(vm_id)
    return vm.STATE, vm.LCM_STATE


def test_a_whole_scenario_through_pyone(frontend: RunningFrontEnd) -> None:
    one = pyone_client(frontend)
    raw = Raw(frontend)
    name = f"site-{uuid.uuid4().hex[:6]}"
    cluster_id = one.cluster.allocate(name)
    host_id = one.host.allocate(f"{name}-h1", "dummy", "dummy", cluster_id)
    _until("host MONITORED", lambda: one.host.info(host_id).STATE == 2)
    raw.ok("one.host.info", host_id)
    raw.ok("one.cluster.info", cluster_id)

    image_id = one.image.allocate(
        {"IMAGE": {"NAME": f"{name}-data", "TYPE": "DATABLOCK", "SIZE": "16"}}, 1
    )
    _until("image READY", lambda: one.image.info(image_id).STATE == 1)
    raw.ok("one.image.info", image_id)

    vnet_id = one.vn.allocate(
        {
            "VNET": {
                "NAME": f"{name}-net",
                "VN_MAD": "dummy",
                "BRIDGE": "br0",
                "AR": {"TYPE": "IP4", "IP": "192.0.2.10", "SIZE": "8"},
            }
        },
        cluster_id,
    )
    assert len(one.vn.info(vnet_id).AR_POOL.AR) == 1
    raw.ok("one.vn.info", vnet_id)

    template_id = one.template.allocate(
        f'NAME = "{name}-tpl"\nCPU = 0.5\nMEMORY = 128\n'
        f"DISK = [ IMAGE_ID = {image_id} ]\nNIC = [ NETWORK_ID = {vnet_id} ]\n"
        f'SCHED_REQUIREMENTS = "CLUSTER_ID = {cluster_id}"\n'
    )
    raw.ok("one.template.info", template_id)
    vm_id = one.template.instantiate(template_id, f"{name}-vm", False, "")
    running = (pyone.VM_STATE.ACTIVE, pyone.LCM_STATE.RUNNING)
    _until("VM RUNNING", lambda: _vm_state(one, vm_id) == running)
    vm = one.vm.info(vm_id)
    assert host_id == vm.HISTORY_RECORDS.HISTORY[-1].HID
    raw.ok("one.vm.info", vm_id)

    one.vm.action("poweroff", vm_id)
    _until("POWEROFF", lambda: _vm_state(one, vm_id)[0] == pyone.VM_STATE.POWEROFF)
    with pytest.raises(pyone.OneActionException):
        one.vm.action("poweroff", vm_id)  # already off
    one.vm.action("resume", vm_id)
    _until("RUNNING again", lambda: _vm_state(one, vm_id) == running)

    # The fake hypervisor keeps no disks: the snapshot is refused as an ACTION error.
    with pytest.raises(pyone.OneActionException):
        one.vm.disksnapshotcreate(vm_id, 0, "snap")

    mine = one.vmpool.info(-3, -1, -1, -1)
    assert vm_id in [v.ID for v in mine.VM]
    assert [v.ID for v in one.vmpool.info(-2, vm_id, vm_id, -1).VM] == [vm_id]
    raw.ok("one.vmpool.info", -2, -1, -1, -1)
    raw.ok("one.vmpool.info", -2, -1, -1, -1, extended=False)
    raw.ok("one.vmpool.infoextended", -2, -1, -1, -1, extended=True)
    for pool in ("hostpool", "clusterpool", "imagepool", "vnpool", "templatepool"):
        args: tuple[int, ...] = () if pool in ("hostpool", "clusterpool") else (-2, -1, -1)
        raw.ok(f"one.{pool}.info", *args)

    one.vm.action("terminate-hard", vm_id)
    _until("DONE", lambda: _vm_state(one, vm_id)[0] == pyone.VM_STATE.DONE)
    assert vm_id not in [v.ID for v in one.vmpool.info(-2, -1, -1, -1).VM]
    assert vm_id in [v.ID for v in one.vmpool.info(-2, -1, -1, -2).VM]  # -2: DONE too


def test_errors_are_opennebulas_exceptions(frontend: RunningFrontEnd, admin: Client) -> None:
    one = pyone_client(frontend)
    with pytest.raises(pyone.OneNoExistsException):
        one.vm.info(987654)
    with pytest.raises(pyone.OneAuthenticationException):
        pyone_client(frontend, frontend.admin_user, "wrong-password").vm.info(0)
    with pytest.raises(pyone.OneActionException):
        one.vm.action("no-such-action", 0)

    owner_name, owner_password = f"u-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.users.create(name=owner_name, password=owner_password)
    other_name, other_password = f"u-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.users.create(name=other_name, password=other_password)
    owner = pyone_client(frontend, owner_name, owner_password)
    vm_id = owner.vm.allocate('NAME = "private"\nCPU = 0.1\nMEMORY = 32\n', True)
    other = pyone_client(frontend, other_name, other_password)
    with pytest.raises(pyone.OneAuthorizationException):
        other.vm.info(vm_id)
    with pytest.raises(pyone.OneAuthorizationException):
        other.vm.action("terminate-hard", vm_id)
    assert vm_id not in [v.ID for v in other.vmpool.info(-2, -1, -1, -1).VM]
    owner.vm.action("terminate-hard", vm_id)
