"""NIC hotplug on a host, the parts that need no guest: refusals, no-ops, QEMU's NIC ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node import attach, hotplug
from edgecloud.node.__main__ import handle
from edgecloud.node.protocol import NodeError

pytestmark = pytest.mark.unit

NIC = {
    "nic_id": 1,
    "mac": "02:00:c6:12:00:0b",
    "ip": "198.18.10.11",
    "vnet": {"id": 3, "driver": "bridge", "bridge": "ecbr3"},
}


def _guest(root: Path, kind: str, **extra: Any) -> None:
    guest = root / "guests" / "one-5"
    guest.mkdir(parents=True)
    spec = {"kind": kind, "deploy_id": "one-5", "nics": [], "network": {}, **extra}
    (guest / "spec.json").write_text(json.dumps(spec))


def test_microvm_has_no_hotplug(tmp_path: Path) -> None:
    _guest(tmp_path, "microvm")
    with pytest.raises(NodeError) as err:
        hotplug.attach(tmp_path, "one-5", NIC, {"address": "198.18.0.10"})
    assert err.value.kind == "failed"
    assert err.value.message == "microvm has no hotplug: power it off to change its NICs"


def test_a_missing_guest_is_missing(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as err:
        hotplug.attach(tmp_path, "one-5", NIC, {"address": "198.18.0.10"})
    assert err.value.kind == "missing"


def test_a_stopped_guest_gets_no_nic(tmp_path: Path) -> None:
    _guest(tmp_path, "lxc")
    with pytest.raises(NodeError, match="not running"):
        hotplug.attach(tmp_path, "one-5", NIC, {"address": "198.18.0.10"})


def test_detaching_a_nic_the_guest_lacks_is_a_no_op(tmp_path: Path) -> None:
    _guest(tmp_path, "kvm")
    assert hotplug.detach(tmp_path, "one-5", 3) == {"nic_id": 3, "device": "ec5n3"}


def test_bad_requests(tmp_path: Path) -> None:
    root = str(tmp_path)
    answer = handle("nic_attach", json.dumps({"root": root, "deploy_id": "one-5"}))
    assert answer == {"ok": False, "kind": "bad_request", "error": "'nic' must be an object"}
    answer = handle("nic_detach", json.dumps({"root": root, "deploy_id": "one-5", "nic_id": -1}))
    assert answer["kind"] == "bad_request" and "nic_id" in answer["error"]
    _guest(tmp_path, "kvm")
    bad_nic = {**NIC, "mac": "nope"}
    request = {"root": root, "deploy_id": "one-5", "nic": bad_nic, "network": {}}
    answer = handle("nic_attach", json.dumps(request))
    assert answer["kind"] == "bad_request" and "mac" in answer["error"]


def test_qemu_nics_have_ids_and_keep_their_pci_slot(tmp_path: Path) -> None:
    spec = {
        "kind": "kvm",
        "deploy_id": "one-5",
        "nics": [{**NIC, "nic_id": 0}, {**NIC, "pci_slot": 5}],
        "context": {},
    }
    args = attach.qemu_args(spec, tmp_path)
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    assert devices == [
        "virtio-net-pci,netdev=net0,mac=02:00:c6:12:00:0b,id=nic0",
        "virtio-net-pci,netdev=net1,mac=02:00:c6:12:00:0b,id=nic1,addr=0x5",
    ]
