"""Cold migration through the REST API between two namespace hosts (over SSH).

A VM keeps a boot counter in a block of its disk (see test_storage_api). It boots on host
A, is migrated powered off to host B and boots there with its data; migrated while
running (saved, moved, restored) back to A; and a migration whose target dies mid-copy
fails with the reason, the VM running on its source and nothing of it on the target;
retried once the target is back, it completes.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from edgecloud.api.infra import Host
from edgecloud.client import Client
from tests.host.conftest import NetHostsFactory
from tests.host.test_storage_api import (
    BLOCKS,
    BOOT,
    COUNTER,
    _action,
    _boots,
    _seen,
    _template_id,
    _wait,
    sums,
)
from tests.support.guests import add_host, leftovers, wait_for
from tests.support.nethosts import NetHost

pytestmark = pytest.mark.host


def _vm(admin: Client, host: Host, image_id: int, name: str) -> int:
    vm = admin.vms.create(
        name=name,
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={host.id}",
            "DISK": [{"IMAGE_ID": str(image_id)}],
            "CONTEXT": {"START_SCRIPT": COUNTER},
        },
    )
    return vm.id


def _migrate(admin: Client, vm_id: int, host: Host) -> None:
    admin.vms.action(vm_id, "migrate", host_id=host.id)


def _on(admin: Client, vm_id: int, host: Host, state: str) -> None:
    def there() -> bool:
        vm = admin.vms.get(vm_id)
        return (
            vm.host_id == host.id
            and vm.state_name == state
            and vm.lcm_state_name
            in (
                "LCM_INIT",
                "RUNNING",
            )
        )

    wait_for(f"VM {vm_id} {state} on {host.name}", there, BOOT)


def _staging(net: NetHost) -> list[str]:
    parent = net.root / "cache" / "incoming-guests"
    return sorted(p.name for p in parent.iterdir()) if parent.is_dir() else []


@pytest.fixture(scope="module")
def disk_image(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> int:
    """A 96 MiB raw image of random bytes (big enough that a move takes a moment)."""
    file = tmp_path_factory.mktemp("images") / "big.raw"
    with file.open("wb") as out:
        for _ in range(96):
            out.write(os.urandom(1 << 20))
        out.seek(65536)
        out.write(bytes(16))  # the guests' counter block starts at 0
    image = admin.images.create(name="migrating", kind="DATABLOCK", upload=True)
    admin.images.upload(image.id, file)
    return image.id


def test_cold_migration_keeps_the_data_both_ways(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], disk_image: int
) -> None:
    a, b = hosts
    vm_id = _vm(admin, a, disk_image, "mover")
    try:
        _wait(admin, [vm_id], "RUNNING")
        assert _boots(admin, vm_id, 0) == 0  # wrote 1
        on_a = sums(admin, vm_id)[1]
        deploy = admin.vms.get(vm_id).deploy_id
        _action(admin, vm_id, "poweroff", "POWEROFF")
        _migrate(admin, vm_id, b)
        _on(admin, vm_id, b, "POWEROFF")
        assert leftovers(two_hosts[0], deploy) == []  # nothing left on A
        _action(admin, vm_id, "resume", "RUNNING")
        assert admin.vms.get(vm_id).host_id == b.id
        assert _boots(admin, vm_id, 1) == 1  # its disk came along: reads 1, writes 2
        assert sums(admin, vm_id)[0] == on_a  # the same bytes, checksummed in the guest
        on_b = sums(admin, vm_id)[1]

        boots = 2
        _migrate(admin, vm_id, a)  # running: saved on B, moved, restored on A
        _on(admin, vm_id, a, "ACTIVE")
        assert leftovers(two_hosts[1], deploy) == []
        time.sleep(1)
        log = admin.vms.console_log(vm_id)
        assert log.count("WROTE=") == boots  # restored from memory, not booted again
        _action(admin, vm_id, "poweroff", "POWEROFF")
        _action(admin, vm_id, "resume", "RUNNING")
        assert _boots(admin, vm_id, boots) == 2
        assert sums(admin, vm_id)[0] == on_b
        assert _staging(two_hosts[0]) == [] and _staging(two_hosts[1]) == []
    finally:
        admin.vms.action(vm_id, "terminate", hard=True)
        _wait(admin, [vm_id], "DONE")


def test_a_migration_whose_target_dies_leaves_the_vm_on_its_source(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], disk_image: int
) -> None:
    a, b = hosts
    net_b = two_hosts[1]
    vm_id = _vm(admin, a, disk_image, "stayer")
    try:
        _wait(admin, [vm_id], "RUNNING")
        _boots(admin, vm_id, 0)
        deploy = admin.vms.get(vm_id).deploy_id
        # B's image cache is cold: the move sends 96 MiB to it; B goes away mid-way.
        for entry in (net_b.root / "cache" / "images").glob("[0-9a-f]*"):
            subprocess.run(["rm", "-rf", str(entry)], check=True)
        _migrate(admin, vm_id, b)
        wait_for(
            "the move to start",
            lambda: admin.vms.get(vm_id).lcm_state_name == "PROLOG_MIGRATE",
            BOOT,
        )
        net_b.stop_sshd()
        try:
            _on(admin, vm_id, a, "ACTIVE")
            vm = admin.vms.get(vm_id)
            assert "move" in vm.error
            assert not (net_b.root / "guests" / deploy).exists()
            assert leftovers(two_hosts[0], deploy) != []  # still there, running
        finally:
            net_b.start_sshd()
        wait_for("host B back", lambda: admin.hosts.get(b.id).state_name == "MONITORED", 60)
        _migrate(admin, vm_id, b)  # retried: it completes
        _on(admin, vm_id, b, "ACTIVE")
        assert _staging(net_b) == []
        assert leftovers(two_hosts[0], deploy) == []
        assert Path(net_b.root / "guests" / deploy / "disk.0").exists()
    finally:
        admin.vms.action(vm_id, "terminate", hard=True)
        _wait(admin, [vm_id], "DONE")


UPTIME = (
    "(while true; do echo UP=$(cut -d' ' -f1 /proc/uptime) > /dev/console; sleep 1; done)"
    " </dev/null >/dev/null 2>&1 &"
)


def _ups(admin: Client, vm_id: int) -> list[float]:
    return [float(x) for x in re.findall(r"UP=([0-9.]+)", admin.vms.console_log(vm_id))]


def test_live_migration_keeps_the_guest_running_and_its_disk(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], disk_image: int
) -> None:
    a, b = hosts
    vm = admin.vms.create(
        name="live",
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={a.id}",
            "DISK": [{"IMAGE_ID": str(disk_image)}],
            "CONTEXT": {"START_SCRIPT": f"{COUNTER}\n{UPTIME}\n{BLOCKS}"},
        },
    )
    try:
        _wait(admin, [vm.id], "RUNNING")
        assert _boots(admin, vm.id, 0) == 0  # wrote 1 into its overlay on A
        on_a = sums(admin, vm.id)[1]
        wait_for("uptime lines", lambda: len(_ups(admin, vm.id)) >= 3, BOOT)
        before = max(_ups(admin, vm.id))
        deploy = admin.vms.get(vm.id).deploy_id
        admin.vms.action(vm.id, "migrate", host_id=b.id, live=True)
        _on(admin, vm.id, b, "ACTIVE")
        assert leftovers(two_hosts[0], deploy) == []
        # The console on B goes on counting from where A's stopped: no reboot.
        wait_for("uptime on B", lambda: len(_ups(admin, vm.id)) >= 2, 60)
        after = _ups(admin, vm.id)
        assert min(after) >= before - 0.5
        assert _seen(admin, vm.id)[0] == "vda,"
        assert "WROTE=" not in admin.vms.console_log(vm.id)
        _action(admin, vm.id, "poweroff", "POWEROFF")
        _action(admin, vm.id, "resume", "RUNNING")
        assert _boots(admin, vm.id, 0) == 1  # the block written on A came along
        assert sums(admin, vm.id)[0] == on_a
    finally:
        admin.vms.action(vm.id, "terminate", hard=True)
        _wait(admin, [vm.id], "DONE")


def test_cold_migration_to_another_cluster_keeps_the_data(
    admin: Client, hosts: list[Host], nethosts: NetHostsFactory, disk_image: int
) -> None:
    (net,) = nethosts(1)
    cluster = admin.clusters.create(name="far-site")
    far = add_host(admin, net, cluster.id)
    vm_id = _vm(admin, hosts[0], disk_image, "emigrant")
    try:
        _wait(admin, [vm_id], "RUNNING")
        assert _boots(admin, vm_id, 0) == 0  # wrote 1
        near = sums(admin, vm_id)[1]
        _action(admin, vm_id, "poweroff", "POWEROFF")
        _migrate(admin, vm_id, far)
        _on(admin, vm_id, far, "POWEROFF")
        assert admin.vms.get(vm_id).cluster_id == cluster.id
        _action(admin, vm_id, "resume", "RUNNING")
        assert _boots(admin, vm_id, 1) == 1  # its disk crossed clusters
        assert sums(admin, vm_id)[0] == near
    finally:
        admin.vms.action(vm_id, "terminate", hard=True)
        _wait(admin, [vm_id], "DONE")
