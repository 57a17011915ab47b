"""pyone drives a real guest through /RPC2: a cluster, a namespace host moved into it, an
image imported from a file, a tiny QEMU VM instantiated with that disk; live and offline
disk snapshots (created, reverted, deleted) on the host's qcow2; every document valid."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyone

from edgecloud.api.infra import Host
from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client

BOOT = 150.0
RUNNING = (pyone.VM_STATE.ACTIVE, pyone.LCM_STATE.RUNNING)


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _state(one: Any, vm_id: int) -> tuple[int, int]:
    vm = one.vm.info(vm_id)
    return vm.STATE, vm.LCM_STATE


def test_pyone_runs_a_real_vm_and_snapshots_its_disk(
    admin: Client, frontend: RunningFrontEnd, hosts: list[Host], tmp_path: Path
) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    name = f"one-{uuid.uuid4().hex[:6]}"
    host = hosts[0]
    cluster_id = one.cluster.allocate(name)
    one.cluster.addhost(cluster_id, host.id)
    vm_id: int | None = None
    try:
        blank = tmp_path / "blank.raw"
        subprocess.run(["truncate", "-s", "8M", str(blank)], check=True)
        image_id = one.image.allocate(
            {"IMAGE": {"NAME": f"{name}-disk", "TYPE": "DATABLOCK", "PATH": str(blank)}}, 1
        )
        _until("image READY", lambda: one.image.info(image_id).STATE == 1)
        (tiny,) = [
            t.ID for t in one.templatepool.info(-2, -1, -1).VMTEMPLATE if t.NAME == "tiny-vm"
        ]
        extra = (
            f'DISK = [ IMAGE_ID = {image_id} ]\nSCHED_REQUIREMENTS = "CLUSTER_ID = {cluster_id}"'
        )
        vm_id = one.template.instantiate(tiny, f"{name}-vm", False, extra)
        _until("VM RUNNING", lambda: _state(one, vm_id) == RUNNING, BOOT)
        vm = one.vm.info(vm_id)
        assert host.id == vm.HISTORY_RECORDS.HISTORY[-1].HID
        raw.ok("one.vm.info", vm_id)
        disk_id = 0
        live = one.vm.disksnapshotcreate(vm_id, disk_id, "live")  # while it runs
        one.vm.action("poweroff-hard", vm_id)
        _until("POWEROFF", lambda: _state(one, vm_id)[0] == pyone.VM_STATE.POWEROFF)
        off = one.vm.disksnapshotcreate(vm_id, disk_id, "off")
        assert live != off
        snapshots = admin.vms.disk_snapshots(vm_id, disk_id)
        assert [s.name for s in snapshots] == ["live", "off"]
        one.vm.disksnapshotrevert(vm_id, disk_id, live)
        one.vm.disksnapshotdelete(vm_id, disk_id, live)
        assert [s.name for s in admin.vms.disk_snapshots(vm_id, disk_id)] == ["off"]
        one.vm.action("resume", vm_id)
        _until("RUNNING again", lambda: _state(one, vm_id) == RUNNING, BOOT)
        raw.ok("one.vmpool.info", -2, -1, -1, -1)
    finally:
        if vm_id is not None:
            one.vm.action("terminate-hard", vm_id)
            _until("DONE", lambda: _state(one, vm_id)[0] == pyone.VM_STATE.DONE)
        one.cluster.addhost(0, host.id)
        one.cluster.delete(cluster_id)
