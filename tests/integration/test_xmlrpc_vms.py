"""one.vm.* and one.vmpool.* through pyone and raw calls (every document validated against
OpenNebula's XSDs): VMs from pyone dicts and OpenNebula text run on fake hosts, power
cycles through one.vm.action, OpenNebula's error codes, attributes, ownership and
permissions, disks and NICs, the pool's filters and pages, infoextended and monitoring."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyone
import pytest

from edgecloud.client import Client
from edgecloud.server.xmlrpc.core import ACTION, ALLOCATE, NO_EXISTS
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client
from tests.support.onexsd import validate

PENDING, HOLD, ACTIVE, DONE, POWEROFF = 1, 2, 3, 6, 8
RUNNING = 3
User = tuple[str, str]


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def fake_host(admin: Client) -> int:
    return admin.hosts.create(
        name=f"vm-host-{uuid.uuid4().hex[:6]}", hypervisor="fake", total_cpu=8, total_memory_mb=8192
    ).id


@pytest.fixture(scope="module")
def one(frontend: RunningFrontEnd, fake_host: int) -> Any:
    return pyone_client(frontend)


@pytest.fixture(scope="module")
def raw(frontend: RunningFrontEnd) -> Raw:
    return Raw(frontend)


@pytest.fixture
def new_user(admin: Client) -> Callable[[], User]:
    """Create a plain user; its (name, password)."""

    def make() -> User:
        name, password = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        admin.users.create(name=name, password=password)
        return name, password

    return make


def wait_vm(one: Any, vm_id: int, state: int, lcm: int | None = None, timeout: float = 30) -> Any:
    """Poll one.vm.info (read by pyone) until the VM is in `state` (and `lcm`)."""
    deadline = time.monotonic() + timeout
    while True:
        vm = one.vm.info(vm_id)
        if state == vm.STATE and (lcm is None or lcm == vm.LCM_STATE):
            return vm
        assert time.monotonic() < deadline, (vm.STATE, vm.LCM_STATE, vm.USER_TEMPLATE)
        time.sleep(0.1)


def when_idle(call: Callable[[], Any], timeout: float = 30) -> Any:
    """Make a call refused while an operation (a reboot, a hotplug) still runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except pyone.OneActionException as exc:
            if "in progress" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def small(name: str, **extra: str) -> dict[str, Any]:
    return {"TEMPLATE": {"NAME": name, "CPU": "0.1", "MEMORY": "32", **extra}}


def test_a_vm_from_a_pyone_dict_runs_powers_off_resumes_and_terminates(one: Any, raw: Raw) -> None:
    vm_id = one.vm.allocate(small("xr-life", LABELS="web"))
    vm = wait_vm(one, vm_id, pyone.VM_STATE.ACTIVE, pyone.LCM_STATE.RUNNING)
    assert pyone.VM_STATE(vm.STATE) == pyone.VM_STATE.ACTIVE
    assert pyone.LCM_STATE(vm.LCM_STATE) == pyone.LCM_STATE.RUNNING
    assert vm.NAME == "xr-life" and vm.TEMPLATE["CPU"] == "0.1" and vm.TEMPLATE["MEMORY"] == "32"
    assert vm.TEMPLATE["VMID"] == str(vm_id)
    assert vm.USER_TEMPLATE["LABELS"] == "web"
    assert vm.HISTORY_RECORDS.HISTORY[-1].HOSTNAME.startswith("vm-host-")
    doc = raw.ok("one.vm.info", vm_id)
    assert "<STATE>3</STATE><LCM_STATE>3</LCM_STATE>" in doc

    assert one.vm.action("poweroff", vm_id) == vm_id
    wait_vm(one, vm_id, pyone.VM_STATE.POWEROFF)
    one.vm.action("resume", vm_id)
    wait_vm(one, vm_id, pyone.VM_STATE.ACTIVE, pyone.LCM_STATE.RUNNING)
    one.vm.action("reboot-hard", vm_id)
    wait_vm(one, vm_id, pyone.VM_STATE.ACTIVE, pyone.LCM_STATE.RUNNING)
    when_idle(lambda: one.vm.action("terminate-hard", vm_id))
    vm = wait_vm(one, vm_id, pyone.VM_STATE.DONE)
    assert vm.ETIME >= vm.STIME > 0
    assert raw.ok("one.vm.info", vm_id).count("<HISTORY>") >= 1


def test_a_vm_from_opennebula_text_on_hold_is_released(one: Any, raw: Raw) -> None:
    text = 'NAME = "xr-text"\nCPU = 0.1\nMEMORY = 32\nCONTEXT = [ NETWORK = "YES" ]\n'
    vm_id = raw.ok("one.vm.allocate", text, True)
    vm = one.vm.info(vm_id)
    assert vm.STATE == HOLD and vm.TEMPLATE["CONTEXT"]["NETWORK"] == "YES"
    one.vm.action("release", vm_id)
    wait_vm(one, vm_id, ACTIVE, RUNNING)
    one.vm.action("terminate", vm_id)
    wait_vm(one, vm_id, DONE)


def test_errors_carry_opennebula_codes(
    one: Any, raw: Raw, frontend: RunningFrontEnd, new_user: Callable[[], User]
) -> None:
    vm_id = one.vm.allocate(small("xr-codes"), True)
    with pytest.raises(pyone.OneActionException):
        one.vm.action("poweroff", vm_id)  # on hold: the state refuses it
    message, code = raw.error("one.vm.action", "resume", vm_id)
    assert code == ACTION and "not valid in state HOLD" in message
    assert raw.error("one.vm.action", "explode", vm_id)[1] == ACTION
    with pytest.raises(pyone.OneNoExistsException):
        one.vm.info(999_999)
    assert raw.error("one.vm.action", "terminate", 999_999)[1] == NO_EXISTS
    assert raw.error("one.vm.allocate", "CPU = -1")[1] == ALLOCATE
    assert raw.error("one.vm.allocate", 'NAME = "x"\nCPU = [')[1] == ALLOCATE

    stranger = pyone_client(frontend, *new_user())
    with pytest.raises(pyone.OneAuthorizationException):
        stranger.vm.info(vm_id)
    with pytest.raises(pyone.OneAuthorizationException):
        stranger.vm.action("terminate", vm_id)
    with pytest.raises(pyone.OneAuthorizationException):
        stranger.vm.deploy(vm_id, 0)
    one.vm.action("terminate", vm_id)


def test_attributes_name_owner_and_permissions(
    one: Any, raw: Raw, frontend: RunningFrontEnd, admin: Client, new_user: Callable[[], User]
) -> None:
    vm_id = one.vm.allocate(small("xr-attrs"), True)
    one.vm.update(vm_id, {"NOTE": "first", "OWNER_TEAM": "edge"}, 0)
    one.vm.update(vm_id, 'NOTE = "second"', 1)
    vm = one.vm.info(vm_id)
    assert vm.USER_TEMPLATE["NOTE"] == "second" and vm.USER_TEMPLATE["OWNER_TEAM"] == "edge"
    one.vm.update(vm_id, 'ONLY = "this"', 0)
    assert "OWNER_TEAM" not in one.vm.info(vm_id).USER_TEMPLATE

    one.vm.rename(vm_id, "xr-renamed")
    assert one.vm.info(vm_id).NAME == "xr-renamed"
    assert raw.error("one.vm.rename", vm_id, "")[1] == ACTION

    name, password = new_user()
    user = next(u for u in admin.users.list() if u.name == name)
    one.vm.chmod(vm_id, -1, -1, -1, 1, 0, 0, 1, -1, -1)
    perms = one.vm.info(vm_id).PERMISSIONS
    assert (perms.OWNER_U, perms.OWNER_M, perms.GROUP_U, perms.OTHER_U) == (1, 1, 1, 1)
    assert perms.GROUP_M == 0
    one.vm.chown(vm_id, user.id, -1)
    vm = one.vm.info(vm_id)
    assert user.id == vm.UID and name == vm.UNAME
    theirs = pyone_client(frontend, name, password)
    assert vm_id == theirs.vm.info(vm_id).ID
    theirs.vm.action("terminate", vm_id)
    assert one.vm.info(vm_id).STATE == DONE


def test_placement_and_recovery_by_the_admin(one: Any, raw: Raw, fake_host: int) -> None:
    vm_id = one.vm.allocate(small("xr-deploy"), True)
    assert one.vm.deploy(vm_id, fake_host, False, -1) == vm_id
    vm = wait_vm(one, vm_id, ACTIVE, RUNNING)
    assert fake_host == vm.HISTORY_RECORDS.HISTORY[-1].HID
    assert raw.error("one.vm.migrate", vm_id, fake_host, False, False, -1, 0)[1] == ACTION
    assert raw.error("one.vm.recover", vm_id, 9)[1] == ACTION
    one.vm.recover(vm_id, 3)  # delete
    wait_vm(one, vm_id, DONE)


def test_disks_nics_and_what_we_do_not_do(
    one: Any, raw: Raw, admin: Client, tmp_path: Path
) -> None:
    file = tmp_path / "data.raw"
    file.write_bytes(b"\0" * 65536)
    image = admin.images.create(
        name=f"xr-img-{uuid.uuid4().hex[:6]}", upload=True, kind="DATABLOCK"
    )
    image_id = admin.images.upload(image.id, file).id
    vnet = admin.vnets.create(
        name=f"xr-net-{uuid.uuid4().hex[:6]}",
        driver="bridge",
        bridge="br0",
        address_ranges=[{"type": "IP4", "ip": "10.77.0.10", "size": 8}],
    )
    text = f'NAME = "xr-disks"\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = "{image_id}" ]\n'
    vm_id = one.vm.allocate(text, True)
    one.vm.attach(vm_id, 'DISK = [ TYPE = "fs", SIZE = "16", FS = "ext4" ]')
    one.vm.attachnic(vm_id, {"NIC": {"NETWORK_ID": str(vnet.id), "IP": "10.77.0.12"}})
    vm = one.vm.info(vm_id)
    disks = vm.TEMPLATE["DISK"]
    assert [d["DISK_ID"] for d in disks] == ["0", "1"] and disks[0]["IMAGE_ID"] == str(image_id)
    assert vm.TEMPLATE["NIC"]["NETWORK_ID"] == str(vnet.id)
    assert "<IP>10.77.0.12</IP>" in raw.ok("one.vm.info", vm_id)
    pool = raw.ok("one.vmpool.info", -2, vm_id, vm_id, -1)
    assert "<IP>10.77.0.12</IP>" in pool and "<NIC_ID>0</NIC_ID>" in pool
    assert f"<IMAGE_ID>{image_id}</IMAGE_ID>" in pool and "<DISK_ID>1</DISK_ID>" in pool

    one.vm.action("release", vm_id)
    wait_vm(one, vm_id, ACTIVE, RUNNING)
    with pytest.raises(pyone.OneActionException):
        one.vm.disksnapshotcreate(vm_id, 0, "before")  # fake hosts keep no disks
    with pytest.raises(pyone.OneActionException):
        one.vm.disksnapshotcreate(vm_id, 1, "before")  # a volatile disk: no snapshots
    assert raw.error("one.vm.disksaveas", vm_id, 0, "copy", "", -1)[1] == ACTION  # running
    message, code = raw.error("one.vm.detach", vm_id, 7)
    assert code == ACTION and "no disk 7" in message
    assert raw.error("one.vm.detachnic", vm_id, 5)[1] == ACTION
    assert raw.error("one.vm.resize", vm_id, "CPU = 2", False)[1] == ACTION
    assert raw.error("one.vm.updateconf", vm_id, 'OS = [ ARCH = "x86_64" ]')[1] == ACTION
    one.vm.detachnic(vm_id, 0)
    deadline = time.monotonic() + 30
    while "NIC" in one.vm.info(vm_id).TEMPLATE:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    one.vm.action("terminate-hard", vm_id)
    wait_vm(one, vm_id, DONE)


def _ids(doc: str, extended: bool = False) -> list[int]:
    root = validate(doc, extended=extended)
    return [int(vm.findtext("ID") or -1) for vm in root.findall("VM")]


def test_pool_filters_states_and_pages(
    one: Any, raw: Raw, frontend: RunningFrontEnd, new_user: Callable[[], User]
) -> None:
    name, password = new_user()
    theirs = pyone_client(frontend, name, password)
    mine = [one.vm.allocate(small(f"xr-pool-{i}"), True) for i in range(3)]
    their_id = theirs.vm.allocate(small("xr-theirs"), True)
    gone = one.vm.allocate(small("xr-gone"), True)
    one.vm.action("terminate", gone)

    everything = _ids(raw.ok("one.vmpool.info", -2, -1, -1, -2))
    assert set(mine) | {their_id, gone} <= set(everything)
    assert everything == sorted(everything)
    assert gone not in _ids(raw.ok("one.vmpool.info", -2, -1, -1, -1))
    assert _ids(raw.ok("one.vmpool.info", -2, gone, gone, DONE)) == [gone]
    assert set(_ids(raw.ok("one.vmpool.info", -2, -1, -1, HOLD))) >= set(mine)

    assert _ids(Raw(frontend, name, password).ok("one.vmpool.info", -3, -1, -1, -2)) == [their_id]
    seen = _ids(Raw(frontend, name, password).ok("one.vmpool.info", -2, -1, -1, -2))
    assert their_id in seen and not set(mine) & set(seen)  # others' only if they may see them
    own = pyone_client(frontend, name, password).vmpool.info(-3, -1, -1, -1)
    assert [vm.ID for vm in own.VM] == [their_id] and name == own.VM[0].UNAME

    first = _ids(raw.ok("one.vmpool.info", -2, 0, -2, -2))
    second = _ids(raw.ok("one.vmpool.info", -2, -2, -2, -2))
    assert len(first) == len(second) == 2 and first[-1] < second[0]
    assert _ids(raw.ok("one.vmpool.info", -2, mine[1], mine[2], -2)) == mine[1:]
    assert raw.error("one.vmpool.info", -2, -1, -1, -7)[1] != 0

    pool = one.vmpool.info(-2, mine[0], mine[0], -1)
    assert [vm.ID for vm in pool.VM] == [mine[0]] and pool.VM[0].STATE == HOLD
    for vm_id in [*mine, their_id]:
        one.vm.action("terminate", vm_id)


def test_infoextended_and_monitoring_validate(one: Any, raw: Raw) -> None:
    vm_id = one.vm.allocate(small("xr-ext", SCHED_REQUIREMENTS="ID > -1"))
    wait_vm(one, vm_id, ACTIVE, RUNNING)
    deadline = time.monotonic() + 30
    while "<MONITORING>" not in raw.ok("one.vm.monitoring", vm_id):
        assert time.monotonic() < deadline, "no monitoring sample"
        time.sleep(0.2)
    data = one.vm.monitoring(vm_id)
    assert vm_id == data.MONITORING[-1].ID and data.MONITORING[-1].TIMESTAMP > 0
    vm = one.vm.info(vm_id)
    assert vm.LAST_POLL > 0 and vm.MONITORING.TIMESTAMP == vm.LAST_POLL

    doc = raw.ok("one.vmpool.infoextended", -2, vm_id, vm_id, -1, extended=True)
    assert _ids(doc, extended=True) == [vm_id]
    assert "<SCHED_REQUIREMENTS>ID &gt; -1</SCHED_REQUIREMENTS>" in doc
    assert "<PERMISSIONS>" in doc and "<BACKUPS>" in doc
    ext = one.vmpool.infoextended(-2, -1, -1, -1)
    assert vm_id in [v.ID for v in ext.VM]

    pool = raw.ok("one.vmpool.monitoring", -2, 0)
    assert f"<ID>{vm_id}</ID>" in pool
    assert raw.ok("one.vmpool.monitoring", -2).count("<MONITORING>") >= 1
    one.vm.action("terminate-hard", vm_id)
    wait_vm(one, vm_id, DONE)
