"""Disk snapshots of a real TCG guest through the node zipapp: live while it runs (QMP),
offline once it is off (qemu-img). ROOT is a temp dir; QEMU is killed by PID whatever
happens."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.images.tiny import Tiny, ensure_tiny
from tests.host.tcg import tcg_node
from tests.host.test_node_guests import Node, kernel_spec

pytestmark = pytest.mark.host
MIB = 1 << 20


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    """The tiny images (built once per machine, then cached)."""
    return ensure_tiny()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A Node on a fresh ROOT that knows KVM is not to be used (TCG only, no probe)."""
    with tcg_node(tmp_path, "ecdisk-") as made:
        yield made


def _content(disk: Path, scratch: Path) -> bytes:
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", str(disk), str(scratch)], check=True, timeout=60
    )
    return scratch.read_bytes()


def test_live_and_offline_disk_snapshots(node: Node, tiny: Tiny, tmp_path: Path) -> None:
    data = b"\x5a" * (4 * MIB)
    incoming = node.root / "cache" / "images" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "base.raw").write_bytes(data)
    key = hashlib.sha256(data).hexdigest()
    node.ok("image_commit", key=key, part="base.raw")
    disks = [{"disk_id": 0, "image": key, "format": "raw", "mode": "overlay"}]
    disk = node.ok("disks_prolog", deploy_id="one-31", disks=disks)["disks"][0]
    spec = kernel_spec(tiny, 31, tiny.cmdline, disks=[{"path": disk["path"], "format": "qcow2"}])
    pid = node.ok("deploy", kind="kvm", spec=spec)["pid"]
    assert node.qemu_pids() == [pid]
    target: dict[str, Any] = {"deploy_id": "one-31", "disk_id": 0}

    live = node.ok("disk_snapshot", **target, op="create", name="live1")["snapshots"]
    assert [s["name"] for s in live] == ["live1"]
    assert [s["name"] for s in node.ok("disk_snapshot", **target, op="list")["snapshots"]] == [
        "live1"
    ]
    node.ok("disk_snapshot", **target, op="create", name="gone")
    after = node.ok("disk_snapshot", **target, op="delete", name="gone")["snapshots"]
    assert [s["name"] for s in after] == ["live1"]
    answer = node.call("disk_snapshot", **target, op="revert", name="live1")
    assert (answer["ok"], answer["kind"]) == (False, "failed")
    assert "power it off" in answer["error"]
    answer = node.call("disk_export", **target, part="x.qcow2")
    assert (answer["ok"], answer["kind"]) == (False, "failed")
    assert node.qemu_pids() == [pid]  # still running

    node.ok("shutdown", kind="kvm", deploy_id="one-31", hard=True)
    assert not node.qemu_pids()
    path = Path(disk["path"])
    subprocess.run(  # change the disk after the snapshot, then go back to it
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert _content(path, tmp_path / "a.raw")[:4] == b"\x11" * 4
    listed = node.ok("disk_snapshot", **target, op="revert", name="live1")["snapshots"]
    assert [s["name"] for s in listed] == ["live1"]
    assert _content(path, tmp_path / "b.raw") == data
    assert node.ok("disk_snapshot", **target, op="delete", name="live1") == {"snapshots": []}
    node.ok("cleanup", kind="kvm", deploy_id="one-31")
    assert node.ok("image_list")["images"][0]["in_use"] is False
