"""Disks hot-plugged into a real TCG guest through the node zipapp (disk_attach,
disk_detach, disk_resize on a running ``pc`` machine), across a save and restore.

The guest proves it saw each change on its console (the kernel's virtio_blk messages:
a new vdX, its new capacity) and QEMU shows it over QMP (query-block, query-pci); a
detach returns only once the guest let the device go (DEVICE_DELETED). ROOT is a temp
dir; QEMU is killed by PID whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.images.tiny import Tiny, ensure_tiny
from edgecloud.node import qmp
from tests.host.tcg import tcg_node
from tests.host.test_node_guests import HOST_PYTHON, Node, kernel_spec

pytestmark = pytest.mark.host
MIB = 1 << 20
GUEST = "one-41"


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    """The tiny images (built once per machine, then cached)."""
    return ensure_tiny()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A Node on a fresh ROOT that knows KVM is not to be used (TCG only, no probe)."""
    with tcg_node(tmp_path, "ecdhp-") as made:
        yield made


def _blocks(guest: Path) -> dict[str, dict[str, Any]]:
    """Return QEMU's drives by the disk file they have open."""
    found = qmp.execute(guest, "query-block")
    return {b["inserted"]["file"]: b for b in found if isinstance(b.get("inserted"), dict)}


def _pci(guest: Path) -> dict[int, str]:
    """Return the slots of bus 0 that hold a virtio-blk device, with its qdev id."""
    buses = qmp.execute(guest, "query-pci")
    devices = [d for bus in buses if bus["bus"] == 0 for d in bus["devices"]]
    return {d["slot"]: d["qdev_id"] for d in devices if d["id"]["device"] == 0x1001}


def _wait_console(node: Node, needle: str, after: int = 0, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in node.console(GUEST)[after:]:
        assert time.monotonic() < deadline, f"the guest never printed {needle!r}"
        time.sleep(0.3)


def _spec_disks(node: Node) -> list[dict[str, Any]]:
    spec = json.loads((node.root / "guests" / GUEST / "spec.json").read_text())
    return list(spec["disks"])


def _detach_in(node: Node, disk_id: int, seconds: float) -> dict[str, Any]:
    """Run disk_detach with its "timeout" field (Node.call has a timeout of its own)."""
    request = {"root": str(node.root), "deploy_id": GUEST, "disk_id": disk_id}
    done = subprocess.run(
        [HOST_PYTHON, str(node.pyz), "disk_detach"],
        input=json.dumps({**request, "timeout": seconds}),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _volatile(disk_id: int, size_mb: int) -> dict[str, Any]:
    return {"disk_id": disk_id, "mode": "volatile", "size_mb": size_mb}


def test_disks_hot_plugged_resized_and_unplugged(node: Node, tiny: Tiny) -> None:
    guest = node.root / "guests" / GUEST
    disk0 = node.ok("disks_prolog", deploy_id=GUEST, disks=[_volatile(0, 4)])["disks"][0]
    spec = kernel_spec(tiny, 41, tiny.cmdline, disks=[{**disk0, "format": "raw", "disk_id": 0}])
    pid = node.ok("deploy", kind="kvm", spec=spec)["pid"]
    assert node.qemu_pids() == [pid]
    assert "[vda]" in node.console(GUEST)

    # attach a 16 MiB disk: QEMU has it, the guest's kernel finds vdb
    mark = len(node.console(GUEST))
    answer = node.ok("disk_attach", deploy_id=GUEST, disk=_volatile(1, 16))
    path1 = str(guest / "disk.1")
    assert answer == {"disk_id": 1, "path": path1, "hotplugged": True}
    _wait_console(node, "[vdb] 32768 512-byte logical blocks", mark)
    block = _blocks(guest)[path1]
    assert block["inserted"]["node-name"] == "disk1-fmt"
    assert block["inserted"]["image"]["virtual-size"] == 16 * MIB
    assert "disk1-dev" in _pci(guest).values()
    slots = {d["disk_id"]: d.get("pci_slot") for d in _spec_disks(node)}
    assert set(slots) == {0, 1} and all(isinstance(s, int) for s in slots.values())
    assert _pci(guest)[slots[1]] == "disk1-dev"
    again = node.ok("disk_attach", deploy_id=GUEST, disk=_volatile(1, 16))  # a no-op
    assert again == answer
    assert list(_pci(guest).values()).count("disk1-dev") == 1

    # grow it while it runs: the guest sees the new capacity at once
    mark = len(node.console(GUEST))
    assert node.ok("disk_resize", deploy_id=GUEST, disk_id=1, size_mb=32) == {
        "virtual_size": 32 * MIB
    }
    _wait_console(node, "vdb: detected capacity change from 32768 to 65536", mark)
    assert _blocks(guest)[path1]["inserted"]["image"]["virtual-size"] == 32 * MIB
    refusal = node.call("disk_resize", deploy_id=GUEST, disk_id=1, size_mb=8)
    assert (refusal["ok"], refusal["kind"]) == (False, "bad_request")
    assert "'size_mb' 8" in refusal["error"] and str(32 * MIB) in refusal["error"]

    # the boot-time disk 0 (a -drive if=virtio: its device has no id) goes too
    assert node.ok("disk_detach", deploy_id=GUEST, disk_id=0) == {}
    assert str(guest / "disk.0") not in _blocks(guest)
    assert not (guest / "disk.0").exists()
    assert [d["disk_id"] for d in _spec_disks(node)] == [1]
    assert list(_pci(guest).values()) == ["disk1-dev"]

    # a second hot-plugged disk, then save and restore: each disk is back in its slot
    node.ok("disk_attach", deploy_id=GUEST, disk=_volatile(2, 8))
    before = _pci(guest)
    assert sorted(before.values()) == ["disk1-dev", "disk2-dev"]
    node.ok("save", kind="kvm", deploy_id=GUEST)
    assert not node.qemu_pids()
    refusal = node.call("disk_attach", deploy_id=GUEST, disk=_volatile(3, 8))
    assert (refusal["ok"], refusal["kind"]) == (False, "failed")
    assert "saved memory" in refusal["error"]
    assert node.ok("restore", kind="kvm", deploy_id=GUEST) == {"state": "running"}
    assert _pci(guest) == before
    assert node.poll("kvm", GUEST)["state"] == "running"

    # a guest that does not let go (paused) fails the detach and keeps the disk
    path2 = str(guest / "disk.2")
    qmp.execute(guest, "stop")
    refusal = _detach_in(node, 2, seconds=2)
    assert (refusal["ok"], refusal["kind"]) == (False, "failed")
    assert "did not let disk 2" in refusal["error"]
    assert path2 in _blocks(guest) and Path(path2).exists()
    assert [d["disk_id"] for d in _spec_disks(node)] == [1, 2]
    qmp.execute(guest, "cont")
    assert node.ok("disk_detach", deploy_id=GUEST, disk_id=2) == {}
    assert node.ok("disk_detach", deploy_id=GUEST, disk_id=1) == {}
    assert _blocks(guest) == {}
    assert _pci(guest) == {}
    assert not list(guest.glob("disk.*"))
    assert _spec_disks(node) == []
    assert node.ok("disks_info", deploy_id=GUEST) == {"disks": []}
    refusal = node.call("disk_detach", deploy_id=GUEST, disk_id=1)
    assert (refusal["ok"], refusal["kind"]) == (False, "missing")
    assert len(node.qemu_pids()) == 1  # the restored QEMU, still running
    node.ok("cleanup", kind="kvm", deploy_id=GUEST)
    assert not node.qemu_pids()
