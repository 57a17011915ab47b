"""Export a VM on one front-end, import it on another (its own EDGECLOUD_HOME), boot it.

The guest's counter block (see test_storage_api) proves its disk came along; the image
the second front-end made has the sha256 the bundle's manifest gives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecloud.api.infra import Host
from edgecloud.client import Client, EdgecloudError
from edgecloud.images.tiny import Tiny
from edgecloud.server.seed import register_tiny
from tests.host.test_storage_api import COUNTER, _action, _boots, _template_id, _wait, sums
from tests.support.frontend import RunningFrontEnd, serve_frontend
from tests.support.guests import wait_for
from tests.support.nethosts import NetHost

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def second(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, tiny: Tiny
) -> Iterator[RunningFrontEnd]:
    """Another front-end, with its own home and store."""
    home = tmp_path_factory.mktemp("frontend2")
    (home / "ssh").mkdir()
    for name in ("id_ed25519", "id_ed25519.pub"):
        shutil.copy2(client_key.parent / name, home / "ssh" / name)
    with serve_frontend(home, monitor_interval=1.0, scheduler_interval=0.2) as running:
        with running.store.write() as session:
            register_tiny(session, tiny)
        yield running


def test_a_vm_exported_here_boots_there_with_its_disk(
    admin: Client,
    hosts: list[Host],
    two_hosts: list[NetHost],
    second: RunningFrontEnd,
    tmp_path: Path,
) -> None:
    blank = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", "8M", str(blank)], check=True)
    image = admin.images.create(name="bundled", kind="DATABLOCK", upload=True)
    admin.images.upload(image.id, blank)
    vm = admin.vms.create(
        name="traveller",
        template_id=_template_id(admin, "tiny-vm"),
        template={
            "SCHED_REQUIREMENTS": f"ID={hosts[0].id}",
            "DISK": [{"IMAGE_ID": str(image.id)}, {"TYPE": "fs", "SIZE": "8"}],
            "CONTEXT": {"START_SCRIPT": COUNTER},
        },
    )
    bundle = tmp_path / "traveller.tar"
    imported: int | None = None
    other = second.client()
    try:
        _wait(admin, [vm.id], "RUNNING")
        assert _boots(admin, vm.id, 0) == 0  # wrote 1
        exported_sum = sums(admin, vm.id)[1]
        with pytest.raises(EdgecloudError, match="powered off"):
            admin.vms.export(vm.id, bundle)
        _action(admin, vm.id, "poweroff", "POWEROFF")
        assert admin.vms.export(vm.id, bundle) == bundle.stat().st_size
        with tarfile.open(bundle) as tar:
            names = tar.getnames()
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert names == ["manifest.json", "disk.0.qcow2"]
        assert "SCHED_REQUIREMENTS" not in manifest["template"]
        assert manifest["disks"][1] == {"disk_id": 1, "volatile": {"SIZE": "8", "TYPE": "fs"}}

        net = two_hosts[1]
        root = net.root / "second"
        host = other.hosts.create(name="second-host", address=net.address, root=str(root))
        wait_for("the second front-end's host", lambda: other.hosts.get(host.id).state_name
                 == "MONITORED", 60)  # fmt: skip
        made = other.vms.import_bundle(bundle, name="traveller-copy")
        imported = made.id
        disk = other.images.get(int(made.template["DISK"][0]["IMAGE_ID"]))
        assert disk.checksum == manifest["disks"][0]["sha256"]
        _wait(other, [made.id], "RUNNING")
        assert _boots(other, made.id, 0) == 1  # the disk written on the first front-end
        assert sums(other, made.id)[0] == exported_sum  # checksummed inside the guest
    finally:
        if imported is not None:
            other.vms.action(imported, "terminate", hard=True)
            _wait(other, [imported], "DONE")
        admin.vms.action(vm.id, "terminate", hard=True)
        _wait(admin, [vm.id], "DONE")
        other.close()
