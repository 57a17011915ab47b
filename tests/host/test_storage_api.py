"""Disks from datastore images on a namespace host, through the REST API.

Two VMs from one image on one host: one copy of the image in the host's cache, two qcow2
overlays. A guest keeps a counter in a block of its disk (read, then written + 1, on each
boot, printed on the console): a snapshot taken at 1, a boot that makes it 2, a revert,
and the next boot reads 1 again. A disk saved as a new image boots in another VM with the
counter it had. Nothing is left on the host after terminate but the image cache.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgecloud.api.infra import Host
from edgecloud.client import Client
from edgecloud.drivers.hypervisor.node import shared
from tests.support.console import ConsoleSession
from tests.support.frontend import RunningFrontEnd
from tests.support.guests import leftovers, wait_for
from tests.support.nethosts import NetHost
from tests.support.waiting import wait_vms

pytestmark = pytest.mark.host

BOOT = 180.0
# Block 4096 of /dev/vda (16 bytes at byte 65536) holds the counter. Each boot prints the
# md5 of the disk's first MiB as it found it (BEFORE=) and as it left it (AFTER=): the
# checksum, taken inside the guest, that a snapshot, a move or a copy must keep.
_MD5 = "$(dd if=/dev/vda bs=65536 count=16 2>/dev/null | md5sum | cut -c1-32)"
COUNTER = (
    f"echo BEFORE={_MD5};"
    " n=$(dd if=/dev/vda bs=16 count=1 skip=4096 2>/dev/null | tr -dc 0-9); n=${n:-0};"
    " n=$((10#$n)); echo READ=$n;"
    " printf '%016d' $((n+1)) | dd of=/dev/vda bs=16 seek=4096 conv=notrunc 2>/dev/null;"
    f" sync; echo WROTE=$((n+1)); echo AFTER={_MD5}"
)


def _template_id(admin: Client, name: str) -> int:
    (found,) = [t for t in admin.templates.list() if t.name == name]
    return found.id


def _vm(admin: Client, host: Host, image_id: int, name: str) -> Any:
    return admin.vms.create(
        name=name,
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={host.id}",
            "DISK": [{"IMAGE_ID": str(image_id)}],
            "CONTEXT": {"START_SCRIPT": COUNTER},
        },
    )


def _last(admin: Client, vm_id: int, word: str) -> int | None:
    found = re.findall(rf"{word}=(\d+)", admin.vms.console_log(vm_id))
    return int(found[-1]) if found else None


def sums(admin: Client, vm_id: int) -> tuple[str, str]:
    """Return the (BEFORE, AFTER) checksums the guest printed at its last boot."""
    log = admin.vms.console_log(vm_id)
    before = re.findall(r"BEFORE=([0-9a-f]{32})", log)
    after = re.findall(r"AFTER=([0-9a-f]{32})", log)
    assert before and after, "no checksums on the console"
    return before[-1], after[-1]


def _boots(admin: Client, vm_id: int, seen: int) -> int:
    """Wait for one more boot than `seen` (its AFTER= line); return its READ= value."""

    def more() -> bool:
        return len(re.findall(r"AFTER=[0-9a-f]{32}", admin.vms.console_log(vm_id))) > seen

    wait_for(f"VM {vm_id} boot {seen + 1}", more, BOOT)
    read = _last(admin, vm_id, "READ")
    assert read is not None
    return read


STATES = {"RUNNING": "ACTIVE/RUNNING", "POWEROFF": "POWEROFF", "DONE": "DONE"}


def _wait(admin: Client, vm_ids: list[int], state: str) -> None:
    wanted = STATES[state]
    wait_vms(admin, vm_ids, lambda s: s == wanted, timeout=BOOT)


def _action(admin: Client, vm_id: int, action: str, state: str) -> None:
    hard = {"hard": True} if action == "poweroff" else {}
    admin.vms.action(vm_id, action, **hard)
    _wait(admin, [vm_id], state)


def _qemu_img_info(net: NetHost, path: Path) -> dict[str, Any]:
    done = net.exec(["qemu-img", "info", "-U", "--output=json", str(path)], check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def console_snapshots(frontend: RunningFrontEnd, vm_id: int) -> None:
    """Through the web console: the VM's page lists the snapshot; take one, then delete it."""
    with ConsoleSession(frontend.url) as console:
        assert console.login(frontend.admin_user, frontend.admin_password).status_code == 303
        page = console.get(f"/vms/{vm_id}")
        assert '<span class="snapshot">live1</span>' in page.text
        assert console.post(f"/vms/{vm_id}/disks/0/snapshot", {"name": "c1"}).status_code == 303
        page = console.get(f"/vms/{vm_id}")
        assert '<span class="snapshot">c1</span>' in page.text
        gone = console.post(f"/vms/{vm_id}/disks/0/snapshots/c1/delete")
        assert gone.status_code == 303


@pytest.fixture(scope="module")
def datablock(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> int:
    """An 8 MiB raw image of zeros in the default image datastore."""
    file = tmp_path_factory.mktemp("images") / "blank.raw"
    subprocess.run(["truncate", "-s", "8M", str(file)], check=True)
    image = admin.images.create(name="blank", kind="DATABLOCK", upload=True)
    admin.images.upload(image.id, file)
    return image.id


def test_one_image_copy_two_overlays_snapshot_revert_and_saveas(
    admin: Client,
    frontend: RunningFrontEnd,
    hosts: list[Host],
    two_hosts: list[NetHost],
    datablock: int,
) -> None:
    host, net = hosts[0], two_hosts[0]
    image = admin.images.get(datablock)
    key = image.checksum.removeprefix("sha256:")
    a = _vm(admin, host, datablock, "disk-a")
    b = _vm(admin, host, datablock, "disk-b")
    made: list[int] = [a.id, b.id]
    try:
        _wait(admin, [a.id, b.id], "RUNNING")
        assert _boots(admin, a.id, 0) == 0
        assert _boots(admin, b.id, 0) == 0
        snapshot_sum = sums(admin, a.id)[1]  # A's disk as the snapshot below will keep it
        cache = net.root / "cache" / "images"
        entries = [p.name for p in cache.iterdir() if p.name != "incoming"]
        assert [e for e in entries if not e.startswith(".")] == [key]
        driver = shared(key_dir=frontend.settings.home / "ssh")
        assert driver.disks.sent[(key, host.name)] == 1  # the front-end sent it once
        for vm in (a, b):
            deploy = admin.vms.get(vm.id).deploy_id
            info = _qemu_img_info(net, net.root / "guests" / deploy / "disk.0")
            assert info["format"] == "qcow2"
            assert info["backing-filename"] == str(cache / key)
        assert admin.images.get(datablock).running_vms == 2

        # Live snapshot while running, then the offline snapshot / revert cycle on A.
        live = admin.vms.disk_snapshot_create(a.id, 0, "live1")
        assert [s.name for s in live] == ["live1"]
        console_snapshots(frontend, a.id)
        assert [s.name for s in admin.vms.disk_snapshots(a.id, 0)] == ["live1"]
        _action(admin, a.id, "poweroff", "POWEROFF")
        with pytest.raises(Exception, match="no disk 3"):
            admin.vms.disk_snapshot_create(a.id, 3, "x")
        assert [s.name for s in admin.vms.disk_snapshot_create(a.id, 0, "s1")] == ["live1", "s1"]
        _action(admin, a.id, "resume", "RUNNING")
        assert _boots(admin, a.id, 1) == 1  # reads 1, writes 2
        with pytest.raises(Exception, match="powered off"):
            admin.vms.disk_snapshot_revert(a.id, 0, "s1")
        _action(admin, a.id, "poweroff", "POWEROFF")
        admin.vms.disk_snapshot_revert(a.id, 0, "s1")
        _action(admin, a.id, "resume", "RUNNING")
        assert _boots(admin, a.id, 2) == 1  # back to the snapshot's 1; writes 2 again
        assert sums(admin, a.id)[0] == snapshot_sum  # checksummed inside the guest
        saved_sum = sums(admin, a.id)[1]
        remaining = admin.vms.disk_snapshot_delete(a.id, 0, "live1")
        assert [s.name for s in remaining] == ["s1"]

        # Save A's disk (counter 2) as an image; a new VM boots from it and reads 2.
        _action(admin, a.id, "poweroff", "POWEROFF")
        saved = admin.vms.disk_saveas(a.id, 0, "disk-a-saved")
        assert saved.state_name == "READY" and saved.format == "qcow2"
        c = _vm(admin, host, saved.id, "disk-c")
        made.append(c.id)
        _wait(admin, [c.id], "RUNNING")
        assert _boots(admin, c.id, 0) == 2
        assert sums(admin, c.id)[0] == saved_sum
    finally:
        deploys = [admin.vms.get(v).deploy_id for v in made]
        for vm_id in made:
            admin.vms.action(vm_id, "terminate", hard=True)
        _wait(admin, made, "DONE")
    for deploy in deploys:
        assert leftovers(net, deploy) == []
    assert admin.images.get(datablock).state_name == "READY"


def test_a_persistent_disk_goes_back_to_its_image_and_volatile_disks_are_made(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], tmp_path: Path
) -> None:
    host, net = hosts[1], two_hosts[1]
    file = tmp_path / "persistent.raw"
    subprocess.run(["truncate", "-s", "8M", str(file)], check=True)
    image = admin.images.create(name="keeper", kind="DATABLOCK", persistent=True, upload=True)
    image = admin.images.upload(image.id, file)
    before = image.checksum
    magic = (
        "echo VOL=$(dd if=/dev/vdb bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')"
    )
    vm = admin.vms.create(
        name="keeper-vm",
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={host.id}",
            "DISK": [{"IMAGE_ID": str(image.id)}, {"TYPE": "fs", "SIZE": "16", "FS": "ext4"}],
            "CONTEXT": {"START_SCRIPT": f"{COUNTER}; {magic}"},
        },
    )
    made = [vm.id]
    try:
        _wait(admin, [vm.id], "RUNNING")
        assert _boots(admin, vm.id, 0) == 0
        first_sum = sums(admin, vm.id)[1]
        assert "VOL=53ef" in admin.vms.console_log(vm.id)  # an ext4 superblock on vdb
        assert admin.images.get(image.id).state_name == "USED_PERS"
        deploy = admin.vms.get(vm.id).deploy_id
        admin.vms.action(vm.id, "terminate", hard=True)
        _wait(admin, [vm.id], "DONE")
        assert leftovers(net, deploy) == []
        after = admin.images.get(image.id)
        assert after.state_name == "READY" and after.checksum != before  # the disk came back
        again = _vm(admin, host, image.id, "keeper-again")
        made.append(again.id)
        _wait(admin, [again.id], "RUNNING")
        assert _boots(admin, again.id, 0) == 1  # the write of the first VM is in the image
        assert sums(admin, again.id)[0] == first_sum
    finally:
        for vm_id in made:
            if admin.vms.get(vm_id).state_name != "DONE":
                admin.vms.action(vm_id, "terminate", hard=True)
        _wait(admin, made, "DONE")


# Every second: the block devices the guest sees, and vdb's size in 512-byte sectors.
BLOCKS = (
    "(while true; do echo BLK=$(ls /sys/block | grep vd | tr '\\n' ,)"
    " SIZE=$(cat /sys/block/vdb/size 2>/dev/null || echo 0) > /dev/console; sleep 1; done)"
    " </dev/null >/dev/null 2>&1 &"
)


def _seen(admin: Client, vm_id: int) -> tuple[str, int]:
    found = re.findall(r"BLK=(\S*) SIZE=(\d+)", admin.vms.console_log(vm_id))
    return (found[-1][0], int(found[-1][1])) if found else ("", 0)


def _done(admin: Client, accepted: Any) -> None:
    assert accepted.operation is not None
    wait_for(
        f"operation {accepted.operation.id}",
        lambda: admin.operations.get(accepted.operation.id).state in ("done", "failed"),
        BOOT,
    )
    op = admin.operations.get(accepted.operation.id)
    assert op.state == "done", op.error


def test_disks_are_hot_plugged_grown_and_unplugged(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], datablock: int
) -> None:
    host, net = hosts[0], two_hosts[0]
    vm = admin.vms.create(
        name="hotplug",
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={host.id}",
            "DISK": [{"IMAGE_ID": str(datablock)}],
            "CONTEXT": {"START_SCRIPT": BLOCKS},
        },
    )
    try:
        _wait(admin, [vm.id], "RUNNING")
        wait_for("the guest's block list", lambda: _seen(admin, vm.id)[0] == "vda,", BOOT)
        _done(admin, admin.vms.disk_attach(vm.id, type="fs", size_mb=16))
        wait_for("vdb in the guest", lambda: _seen(admin, vm.id) == ("vda,vdb,", 32768), 60)
        _done(admin, admin.vms.disk_resize(vm.id, 1, 32))
        wait_for("vdb grown in the guest", lambda: _seen(admin, vm.id)[1] == 65536, 60)
        _done(admin, admin.vms.disk_detach(vm.id, 1))
        wait_for("vdb gone from the guest", lambda: _seen(admin, vm.id)[0] == "vda,", 60)
        deploy = admin.vms.get(vm.id).deploy_id
        assert not (net.root / "guests" / deploy / "disk.1").exists()
        # Powered off: the disk is made on the host, and the guest boots with it.
        _action(admin, vm.id, "poweroff", "POWEROFF")
        _done(admin, admin.vms.disk_attach(vm.id, type="fs", size_mb=8))
        assert (net.root / "guests" / deploy / "disk.1").exists()  # the freed id again
        _action(admin, vm.id, "resume", "RUNNING")
        wait_for("vdb after the boot", lambda: _seen(admin, vm.id) == ("vda,vdb,", 16384), BOOT)
    finally:
        if admin.vms.get(vm.id).state_name != "DONE":
            admin.vms.action(vm.id, "terminate", hard=True)
        _wait(admin, [vm.id], "DONE")
