"""Attaching, detaching and growing a VM's disks through the API (fake hosts: the records
and the operations; tests/host checks the disks on real hosts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


@pytest.fixture(scope="module")
def host(admin: Client) -> int:
    """One fake host."""
    return admin.hosts.create(
        name="disk-host", hypervisor="fake", total_cpu=8, total_memory_mb=8192
    ).id


def _image(admin: Client, tmp_path: Path, name: str) -> int:
    file = tmp_path / f"{name}.raw"
    file.write_bytes(b"\0" * 65536)
    image = admin.images.create(name=name, upload=True, kind="DATABLOCK")
    return admin.images.upload(image.id, file).id


def test_disks_are_attached_grown_and_detached(
    admin: Client, host: int, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    first = _image(admin, tmp_path, unique("first"))
    extra = _image(admin, tmp_path, unique("extra"))
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "DISK": [{"IMAGE_ID": str(first)}]})
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)

    done = admin.vms.disk_attach(vm.id, image_id=extra)
    assert done.operation is not None and done.operation.kind == "vm.attach_disk"
    assert wait_operation(admin, done.operation.id) == "done"
    disks = admin.vms.get(vm.id).template["DISK"]
    assert [d["DISK_ID"] for d in disks] == ["0", "1"]
    assert admin.images.get(extra).state_name == "USED"

    volatile = admin.vms.disk_attach(vm.id, type="fs", size_mb=16, fs="ext4")
    assert volatile.operation is not None
    assert wait_operation(admin, volatile.operation.id) == "done"

    with pytest.raises(EdgecloudError) as smaller:
        admin.vms.disk_resize(vm.id, 2, 8)
    assert smaller.value.field == "size_mb" and "only grows" in str(smaller.value)
    grown = admin.vms.disk_resize(vm.id, 2, 32).operation
    assert grown is not None and wait_operation(admin, grown.id) == "done"
    assert admin.vms.get(vm.id).template["DISK"][2]["SIZE"] == "32"

    gone = admin.vms.disk_detach(vm.id, 1).operation
    assert gone is not None and wait_operation(admin, gone.id) == "done"
    disks = admin.vms.get(vm.id).template["DISK"]
    assert [d["DISK_ID"] for d in disks] == ["0", "2"]  # ids stay with their disks
    assert admin.images.get(extra).state_name == "READY"
    again = admin.vms.disk_attach(vm.id, image_id=extra).operation
    assert again is not None and wait_operation(admin, again.id) == "done"
    assert [d["DISK_ID"] for d in admin.vms.get(vm.id).template["DISK"]] == ["0", "2", "3"]

    with pytest.raises(EdgecloudError) as missing:
        admin.vms.disk_detach(vm.id, 9)
    assert missing.value.status == 404 and missing.value.field == "disk_id"
    with pytest.raises(EdgecloudError) as neither:
        admin.vms.disk_attach(vm.id)
    assert neither.value.status == 422
    with pytest.raises(EdgecloudError) as sizeless:
        admin.vms.disk_attach(vm.id, type="swap")
    assert sizeless.value.field == "size_mb"
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    assert admin.images.get(extra).state_name == "READY"


def test_a_vm_on_no_host_has_its_template_changed(
    admin: Client, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    image = _image(admin, tmp_path, unique("held"))
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64}, hold=True)
    done = admin.vms.disk_attach(vm.id, image_id=image, size_mb=4)
    assert done.operation is None
    assert done.vm.template["DISK"][0]["IMAGE_ID"] == str(image)
    assert admin.vms.disk_detach(vm.id, 0).operation is None
    assert admin.images.get(image).state_name == "READY"
    admin.vms.action(vm.id, "terminate")
