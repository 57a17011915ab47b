"""disk_attach, disk_detach and disk_resize of guests that are off (edgecloud.node.
disks_hotplug), run in-process against a temp ROOT with the real qemu-img; plus what they
refuse before touching anything, and the QEMU drives of disks with a recorded PCI slot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node.__main__ import ACTIONS, CHANGES_A_GUEST
from edgecloud.node.guest import parse_spec
from edgecloud.node.qemu_argv import qemu_argv
from tests.unit.test_node_disks import GUEST, MIB, cached, content, ok, qemu_img, refused, write

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-img") and shutil.which("qemu-io")), reason="needs qemu-utils"
)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


def guest_dir(base: Path) -> Path:
    return base / "guests" / GUEST


def spec_json(base: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((guest_dir(base) / "spec.json").read_text())
    return spec


def records(base: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((guest_dir(base) / "disks.json").read_text())["disks"]
    return found


def deployed(base: Path, kind: str = "kvm") -> Path:
    """Give GUEST a disk 0 (disks_prolog) and a spec.json listing it, as a deploy would."""
    disk0 = ok(base, "disks_prolog", deploy_id=GUEST, disks=[volatile(0, 4)])["disks"][0]
    spec = {
        "deploy_id": GUEST,
        "kernel": "/boot/vmlinuz",
        "disks": [{"path": disk0["path"], "format": "raw", "disk_id": 0}],
        "rootfs": "/srv/rootfs" if kind == "lxc" else None,
    }
    (guest_dir(base) / "spec.json").write_text(json.dumps(parse_spec(spec, kind)))
    return Path(disk0["path"])


def volatile(disk_id: int, size_mb: int, fs: str = "raw") -> dict[str, Any]:
    return {"disk_id": disk_id, "mode": "volatile", "size_mb": size_mb, "fs": fs}


@pytest.fixture
def fake_qemu(base: Path) -> Iterator[int]:
    """A process that passes for the guest's running QEMU (its argv names the pid file)."""
    pidfile = guest_dir(base) / "qemu.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(pidfile)])
    try:
        pidfile.write_text(f"{child.pid}\n")
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=10)


def test_actions_are_registered_and_hold_the_guest_lock() -> None:
    for action in ("disk_attach", "disk_detach", "disk_resize"):
        assert action in ACTIONS
        assert action in CHANGES_A_GUEST


def test_attach_makes_lists_and_records_a_volatile_disk(base: Path) -> None:
    deployed(base)
    answer = ok(base, "disk_attach", deploy_id=GUEST, disk=volatile(1, 16, "ext4"))
    path = guest_dir(base) / "disk.1"
    assert answer == {"disk_id": 1, "path": str(path), "hotplugged": False}
    assert path.stat().st_size == 16 * MIB
    assert "ext4" in subprocess.run(["blkid", str(path)], capture_output=True, text=True).stdout
    record = records(base)["1"]
    assert (record["mode"], record["format"], record["size_mb"]) == ("volatile", "raw", 16)
    assert record["virtual_size"] == 16 * MIB
    disks = spec_json(base)["disks"]
    assert [d.get("disk_id") for d in disks] == [0, 1]
    assert disks[1] == {"path": str(path), "format": "raw", "readonly": False, "disk_id": 1}


def test_attach_is_idempotent_and_keeps_data(base: Path, tmp_path: Path) -> None:
    deployed(base)
    key = cached(base, qemu_img_bytes(tmp_path))
    disk = {"disk_id": 2, "mode": "overlay", "image": key, "format": "qcow2", "size_mb": 8}
    first = ok(base, "disk_attach", deploy_id=GUEST, disk=disk)
    path = Path(first["path"])
    info = json.loads(qemu_img("info", "--output=json", str(path)))
    assert info["virtual-size"] == 8 * MIB
    assert info["backing-filename"].endswith(key)
    write(path, 0x33, 0)
    again = ok(base, "disk_attach", deploy_id=GUEST, disk={**disk, "size_mb": 4})
    assert again == first
    assert content(path, tmp_path)[:4] == b"\x33" * 4  # the disk was kept as it was
    assert [d.get("disk_id") for d in spec_json(base)["disks"]] == [0, 2]
    assert ok(base, "image_list")["images"][0]["in_use"] is True
    assert records(base)["2"]["backing"] == key


def qemu_img_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "base.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "2M")
    write(path, 0x44, 0)
    return path.read_bytes()


def test_attach_to_a_guest_without_spec_only_makes_the_disk(base: Path) -> None:
    ok(base, "disks_prolog", deploy_id=GUEST, disks=[volatile(0, 1)])
    answer = ok(base, "disk_attach", deploy_id=GUEST, disk=volatile(3, 2))
    assert answer["hotplugged"] is False
    assert sorted(records(base)) == ["0", "3"]
    assert not (guest_dir(base) / "spec.json").exists()


@pytest.mark.parametrize(
    ("fields", "kind", "words"),
    [
        ({"disk": volatile(1, 1), "deploy_id": "one-99"}, "missing", ["one-99"]),
        ({"disk": "x"}, "bad_request", ["'disk'"]),
        ({"disk": {"disk_id": 1, "mode": "thin"}}, "bad_request", ["'disk'", "'mode'"]),
        ({"disk": {"disk_id": 1, "mode": "volatile"}}, "bad_request", ["'disk'", "size_mb"]),
        ({"disk": {"disk_id": 1, "mode": "overlay", "image": "0" * 64, "format": "raw"}},
         "missing", ["not cached"]),
    ],
)  # fmt: skip
def test_attach_refuses_bad_input_and_makes_nothing(
    base: Path, fields: dict[str, Any], kind: str, words: list[str]
) -> None:
    deployed(base)
    before = (records(base), spec_json(base))
    message = refused(base, "disk_attach", kind, **{"deploy_id": GUEST, **fields})
    assert all(word in message for word in words), message
    assert not (guest_dir(base) / "disk.1").exists()
    assert (records(base), spec_json(base)) == before


def test_attach_refuses_containers_and_saved_guests(base: Path) -> None:
    deployed(base, "lxc")
    assert "container" in refused(
        base, "disk_attach", "failed", deploy_id=GUEST, disk=volatile(1, 1)
    )
    deployed(base)
    (guest_dir(base) / "memory.state").write_bytes(b"saved")
    for action, fields in [
        ("disk_attach", {"disk": volatile(1, 1)}),
        ("disk_detach", {"disk_id": 0}),
        ("disk_resize", {"disk_id": 0, "size_mb": 8}),
    ]:
        message = refused(base, action, "failed", deploy_id=GUEST, **fields)
        assert "saved memory" in message
    assert not (guest_dir(base) / "disk.1").exists()
    assert (guest_dir(base) / "disk.0").stat().st_size == 4 * MIB


def test_a_running_microvm_is_refused_before_anything_is_made(base: Path) -> None:
    deployed(base, "microvm")
    pidfile = guest_dir(base) / "qemu.pid"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(pidfile)])
    try:
        pidfile.write_text(f"{child.pid}\n")
        message = refused(base, "disk_attach", "failed", deploy_id=GUEST, disk=volatile(1, 1))
        assert "microvm" in message
        assert not (guest_dir(base) / "disk.1").exists()
        assert "microvm" in refused(base, "disk_detach", "failed", deploy_id=GUEST, disk_id=0)
        assert (guest_dir(base) / "disk.0").exists()
    finally:
        child.kill()
        child.wait(timeout=10)


def test_attach_to_a_running_guest_whose_qmp_fails_fails(base: Path, fake_qemu: int) -> None:
    deployed(base)
    message = refused(base, "disk_attach", "failed", deploy_id=GUEST, disk=volatile(1, 1))
    assert "QMP" in message
    assert [d.get("disk_id") for d in spec_json(base)["disks"]] == [0]  # not listed


def test_detach_removes_file_record_and_spec_entry(base: Path) -> None:
    deployed(base)
    ok(base, "disk_attach", deploy_id=GUEST, disk=volatile(1, 2))
    ok(base, "disk_attach", deploy_id=GUEST, disk=volatile(2, 2))
    assert ok(base, "disk_detach", deploy_id=GUEST, disk_id=1) == {}
    assert not (guest_dir(base) / "disk.1").exists()
    assert sorted(records(base)) == ["0", "2"]
    assert [d.get("disk_id") for d in spec_json(base)["disks"]] == [0, 2]
    message = refused(base, "disk_detach", "missing", deploy_id=GUEST, disk_id=1)
    assert "disk 1" in message
    refused(base, "disk_detach", "missing", deploy_id="one-98", disk_id=0)
    refused(base, "disk_detach", "bad_request", deploy_id=GUEST)


def test_detach_finishes_a_detach_that_died_midway(base: Path) -> None:
    deployed(base)
    ok(base, "disk_attach", deploy_id=GUEST, disk=volatile(1, 2))
    (guest_dir(base) / "disk.1").unlink()  # the file went, the records stayed
    ok(base, "disk_detach", deploy_id=GUEST, disk_id=1)
    assert sorted(records(base)) == ["0"]
    assert [d.get("disk_id") for d in spec_json(base)["disks"]] == [0]


@pytest.mark.parametrize("mode", ["volatile", "overlay"])
def test_resize_grows_only(base: Path, tmp_path: Path, mode: str) -> None:
    deployed(base)
    if mode == "volatile":
        disk = volatile(1, 4)
    else:
        key = cached(base, qemu_img_bytes(tmp_path))
        disk = {"disk_id": 1, "mode": "overlay", "image": key, "format": "qcow2"}
    path = Path(ok(base, "disk_attach", deploy_id=GUEST, disk=disk)["path"])
    write(path, 0x55, 0, "raw" if mode == "volatile" else "qcow2")
    current = records(base)["1"]["virtual_size"]
    assert ok(base, "disk_resize", deploy_id=GUEST, disk_id=1, size_mb=12) == {
        "virtual_size": 12 * MIB
    }
    assert json.loads(qemu_img("info", "--output=json", str(path)))["virtual-size"] == 12 * MIB
    assert content(path, tmp_path)[:4] == b"\x55" * 4
    assert (records(base)["1"]["size_mb"], records(base)["1"]["virtual_size"]) == (12, 12 * MIB)
    assert current < 12 * MIB
    same = ok(base, "disk_resize", deploy_id=GUEST, disk_id=1, size_mb=12)
    assert same == {"virtual_size": 12 * MIB}
    message = refused(base, "disk_resize", "bad_request", deploy_id=GUEST, disk_id=1, size_mb=3)
    assert "'size_mb' 3" in message and str(12 * MIB) in message and "12 MiB" in message
    refused(base, "disk_resize", "missing", deploy_id=GUEST, disk_id=9, size_mb=30)
    refused(base, "disk_resize", "bad_request", deploy_id=GUEST, disk_id=1, size_mb=0)


def test_disks_with_a_recorded_slot_are_put_back_there() -> None:
    disks = [
        {"path": "/g/disk.0", "format": "qcow2", "disk_id": 0, "pci_slot": 3},
        {"path": "/g/disk,1", "format": "raw", "disk_id": 1, "pci_slot": 5},
    ]
    spec = {**parse_spec({"deploy_id": GUEST, "disks": disks}, "kvm"), "disks": disks}
    argv = qemu_argv(spec, Path("/g"), "tcg")
    pairs = [(a, argv[i + 1]) for i, a in enumerate(argv) if a in ("-drive", "-device")]
    assert pairs == [
        ("-drive", "id=disk0,file=/g/disk.0,format=qcow2,if=none"),
        ("-device", "virtio-blk-pci,drive=disk0,id=disk0-dev,addr=0x3"),
        ("-drive", "id=disk1,file=/g/disk,,1,format=raw,if=none"),
        ("-device", "virtio-blk-pci,drive=disk1,id=disk1-dev,addr=0x5"),
    ]
    plain = [{k: v for k, v in d.items() if k != "pci_slot"} for d in disks]
    argv = qemu_argv({**spec, "disks": plain}, Path("/g"), "tcg")
    assert "-device" not in argv
    assert "id=disk0,file=/g/disk.0,format=qcow2,if=virtio" in argv
