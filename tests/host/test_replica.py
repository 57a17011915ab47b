"""The per-cluster replica cache: a 3-host namespace cluster whose system datastore names
a REPLICA_HOST. The front-end sends an image to the replica once; the other hosts fetch
it from the replica (over HTTP between the hosts, checked by sha256); three concurrent
first deploys on one host make one copy there.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from edgecloud.client import Client
from edgecloud.drivers.hypervisor.node import shared
from tests.host.conftest import NetHostsFactory
from tests.support.frontend import RunningFrontEnd
from tests.support.guests import add_host, wait_for
from tests.support.waiting import wait_vms

pytestmark = pytest.mark.host

BOOT = 240.0


def test_the_front_end_sends_an_image_once_per_cluster(
    admin: Client,
    frontend: RunningFrontEnd,
    nethosts: NetHostsFactory,
    tmp_path: Path,
) -> None:
    nets = nethosts(3)
    cluster = admin.clusters.create(name="edge-a")
    hosts = [add_host(admin, net, cluster.id) for net in nets]
    replica = hosts[0]
    system = admin.datastores.create(
        name="edge-a-system",
        kind="system",
        cluster_ids=[cluster.id],
        template={"REPLICA_HOST": replica.name},
    )
    file = tmp_path / "blob.raw"
    file.write_bytes(os.urandom(4 * 2**20))
    image = admin.images.create(name="replicated", kind="DATABLOCK", upload=True)
    image = admin.images.upload(image.id, file)
    key = image.checksum.removeprefix("sha256:")
    (template,) = [t for t in admin.templates.list() if t.name == "tiny-vm"]

    def create(host_id: int, name: str) -> int:
        vm = admin.vms.create(
            name=name,
            template_id=template.id,
            template={
                "SCHED_REQUIREMENTS": f"ID={host_id}",
                "DISK": [{"IMAGE_ID": str(image.id)}],
            },
        )
        return vm.id

    made: list[int] = []
    lock = threading.Lock()

    def create_one(host_id: int, name: str) -> None:
        vm_id = create(host_id, name)
        with lock:
            made.append(vm_id)

    threads = [
        threading.Thread(target=create_one, args=(hosts[1].id, f"rep-{i}")) for i in range(3)
    ]
    threads.append(threading.Thread(target=create_one, args=(hosts[2].id, "rep-other")))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_vms(admin, made, lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        driver = shared(key_dir=frontend.settings.home / "ssh")
        sent = {h: n for (k, h), n in driver.disks.sent.items() if k == key}
        fetched = {h: n for (k, h), n in driver.disks.fetched.items() if k == key}
        assert sent == {replica.name: 1}  # the front-end sent it once, to the replica
        assert fetched == {hosts[1].name: 1, hosts[2].name: 1}  # one copy per host
        for net in nets:
            assert (net.root / "cache" / "images" / key).is_file()
    finally:
        for vm_id in made:
            admin.vms.action(vm_id, "terminate", hard=True)
        wait_vms(admin, made, lambda s: s == "DONE", timeout=BOOT)
        wait_for(
            "the hosts' image servers to end",
            lambda: not any("image_server" in _cmdline(p) for p in os.listdir("/proc")),
            30,
        )
        admin.datastores.delete(system.id)


def _cmdline(pid: str) -> str:
    if not pid.isdigit():
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
