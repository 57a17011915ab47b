"""The front-end's side of disks on hosts, against a recording stand-in for node actions."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgecloud.drivers.base import GuestSpec, HostRef
from edgecloud.drivers.hypervisor.disks import HostDisks, disks_of, host_paths

KEY = "ab" * 32


def _template(**disk: Any) -> dict[str, Any]:
    return {"DISK": [{"IMAGE_ID": "3", "CHECKSUM": f"sha256:{KEY}", **disk}]}


def test_disks_of_reads_modes_from_the_template() -> None:
    template = {
        "DISK": [
            {"IMAGE_ID": "1", "CHECKSUM": f"sha256:{KEY}", "FORMAT": "qcow2", "SOURCE": "/a"},
            {"IMAGE_ID": "2", "CHECKSUM": f"sha256:{KEY}", "PERSISTENT": "YES", "SOURCE": "/b"},
            {"TYPE": "fs", "SIZE": "64", "FS": "ext4"},
            {"TYPE": "swap", "SIZE": "32"},
            {"SOURCE": "/var/lib/images/x.raw"},
            {"IMAGE_ID": "4", "CHECKSUM": f"sha256:{KEY}", "FORMAT": "dir", "SOURCE": "/c"},
        ]
    }
    found = [(d.disk_id, d.mode, d.fs) for d in disks_of(template)]
    assert found == [
        (0, "overlay", "raw"),
        (1, "copy", "raw"),
        (2, "volatile", "ext4"),
        (3, "volatile", "swap"),
        (4, "inplace", "raw"),
        (5, "rootfs", "raw"),
    ]


def test_host_paths_point_disks_at_the_guest_directory() -> None:
    template = {
        "DISK": [
            {"CHECKSUM": f"sha256:{KEY}", "FORMAT": "raw", "SOURCE": "/front/1"},
            {"SOURCE": "/on/hosts.raw", "FORMAT": "raw"},
            {"CHECKSUM": f"sha256:{KEY}", "FORMAT": "dir", "SOURCE": "/front/2"},
        ]
    }
    spec = host_paths(GuestSpec(7, "vm", template, "one-7"), "/srv/root")
    disks = spec.template["DISK"]
    assert (disks[0]["SOURCE"], disks[0]["FORMAT"]) == ("/srv/root/guests/one-7/disk.0", "qcow2")
    assert disks[1]["SOURCE"] == "/on/hosts.raw"  # a path on the hosts stays
    assert disks[2]["SOURCE"] == f"/srv/root/cache/images/{KEY}"


class Node:
    """Answers node actions like a host would, recording them (unit tests only)."""

    def __init__(self) -> None:
        self.cache: dict[str, set[str]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def call(self, host: HostRef, action: str, request: dict[str, Any], timeout: float) -> Any:
        with self.lock:
            self.calls.append((host.name, action, request))
        held = self.cache.setdefault(host.name, set())
        if action == "image_status":
            return {"present": request["key"] in held}
        if action == "image_commit":
            time.sleep(0.05)  # a copy takes a moment: concurrent callers must wait for it
            held.add(request["key"])
            return {}
        if action == "image_serve":
            return {"url": f"http://{host.address}/t", "pid": 1}
        if action == "image_evict":
            return {"removed": []}
        return {}

    def files(self, host: HostRef) -> Any:
        return self

    def put_file(self, local: Path, remote: str, *, timeout: float) -> int:
        return 1


def _host(index: int) -> HostRef:
    return HostRef(id=index, name=f"h{index}", address=f"10.0.0.{index}", root="/r")


def test_concurrent_first_deploys_make_one_copy_through_the_replica(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(b"x")
    node = Node()
    disks = HostDisks(node.call, node.files)  # type: ignore[arg-type]
    replica, host = _host(1), _host(2)
    spec = GuestSpec(1, "vm", _template(SOURCE=str(image)), "one-1")
    threads = [
        threading.Thread(target=disks.prolog, args=(host, spec), kwargs={"replica": replica})
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert disks.sent == {(KEY, "h1"): 1}
    assert disks.fetched == {(KEY, "h2"): 1}
    commits = [(h, r["key"]) for h, a, r in node.calls if a == "image_commit"]
    assert commits == [("h1", KEY), ("h2", KEY)]
    prologs = [r for h, a, r in node.calls if a == "disks_prolog"]
    assert len(prologs) == 3
    assert {h for h, a, r in node.calls if a == "image_evict"} == {"h1", "h2"}
    assert prologs[0]["disks"] == [{"disk_id": 0, "mode": "overlay", "image": KEY, "format": "raw"}]


def test_the_cache_is_kept_under_the_hosts_limit(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(b"x")
    node = Node()
    disks = HostDisks(node.call, node.files)  # type: ignore[arg-type]
    host = HostRef(id=2, name="h2", address="a", root="/r", attributes={"IMAGE_CACHE_MB": "5"})
    disks.prolog(host, GuestSpec(1, "vm", _template(SOURCE=str(image)), "one-1"))
    evictions = [r for h, a, r in node.calls if a == "image_evict"]
    assert evictions == [{"max_bytes": 5 * 2**20}]


def test_a_volatile_disk_needs_a_size() -> None:
    node = Node()
    disks = HostDisks(node.call, node.files)  # type: ignore[arg-type]
    spec = GuestSpec(1, "vm", {"DISK": [{"TYPE": "fs"}]}, "one-1")
    with pytest.raises(Exception, match="needs a SIZE"):
        disks.prolog(_host(1), spec)
