"""Application images through the REST API on namespace hosts.

An OCI layout is built here: one layer with the tiny busybox rootfs plus /app/run.sh,
whose config says Entrypoint ["/app/run.sh"], Cmd, Env and WorkingDir. `edgecloud image
import-oci` extracts and registers it; it then runs as a microVM (the rootfs appended to
the tiny initramfs, the app as the guest's program) and as an unprivileged LXC application
container (the app as the container's PID 1). Both are RUNNING only once the app printed
its marker; both are stopped gracefully (the app sees SIGTERM) and terminated, leaving
nothing behind. Whatever a failed test leaves running is killed by PID (QEMU) or stopped by
name under the host's root (LXC).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edgecloud.api.infra import Host
from edgecloud.cli.main import app as cli
from edgecloud.client import Client
from edgecloud.images.tiny import Tiny
from tests.support.frontend import RunningFrontEnd
from tests.support.guests import BOOT, attach, create_on, guest_processes, leftovers
from tests.support.nethosts import NetHost
from tests.support.waiting import wait_vms

MARKER = "APP-STARTED"
APP_SCRIPT = b"""#!/bin/sh
trap 'echo APP-STOPPING; exit 0' TERM
echo "APP-STARTED pid=$$ cwd=$(pwd) args=$* greeting=$GREETING"
while :; do sleep 1; done
"""
CONFIG = {
    "Entrypoint": ["/app/run.sh"],
    "Cmd": ["serve", "--greeting=hello"],
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello from oci"],
    "WorkingDir": "/app",
}
STARTED = "APP-STARTED pid={pid} cwd=/app args=serve --greeting=hello greeting=hello from oci"


def _blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def build_layout(layout: Path, rootfs: Path) -> None:
    """Write an OCI layout of one gzip layer: `rootfs` plus the app script."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as layer:
        layer.add(rootfs, arcname=".")
        directory = tarfile.TarInfo("app")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        layer.addfile(directory)
        script = tarfile.TarInfo("app/run.sh")
        script.size, script.mode = len(APP_SCRIPT), 0o755
        layer.addfile(script, io.BytesIO(APP_SCRIPT))
    config = {"architecture": "amd64", "os": "linux", "config": CONFIG, "rootfs": {}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _blob(
            layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"
        ),
        "layers": [_blob(layout, buffer.getvalue(), "application/vnd.oci.image.layer.v1.tar+gzip")],
    }
    descriptor = _blob(
        layout, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "app"}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))


@pytest.fixture(scope="module")
def app_image(
    tiny: Tiny, frontend: RunningFrontEnd, admin: Client, tmp_path_factory: pytest.TempPathFactory
) -> int:
    """The application image, imported with the CLI; its id."""
    base = tmp_path_factory.mktemp("oci")
    build_layout(base / "layout", tiny.rootfs)
    target = base / "images" / "app"
    started = time.monotonic()
    auth = f"{frontend.admin_user}:{frontend.admin_password}"
    argv = ["--url", frontend.url, "--auth", auth, "image", "import-oci", str(base / "layout")]
    result = CliRunner().invoke(cli, [*argv, "--name", "app", "--ref", "app", "--dir", str(target)])
    print(f"\nimport-oci of the tiny rootfs: {time.monotonic() - started:.2f} s")
    assert result.exit_code == 0, result.output
    image_id = int(result.stdout.split()[-1])  # "created image N"
    image = admin.images.get(image_id)
    assert (image.format, image.kind, image.path) == ("dir", "OS", str(target / "rootfs"))
    assert json.loads(image.template["OCI_ENTRYPOINT"]) == ["/app/run.sh"]
    assert image.template["OCI_DIGEST"].startswith("sha256:")
    return image_id


@pytest.fixture(scope="module")
def app_templates(admin: Client, app_image: int) -> None:
    """Templates running the app image as a microVM and as a container."""
    ids = {i.name: i.id for i in admin.images.list() if i.name.startswith("tiny-")}
    tiny_microvm = next(t for t in admin.templates.list() if t.name == "tiny-microvm")
    disk = [{"IMAGE_ID": str(app_image)}]
    microvm = {
        "HYPERVISOR": "microvm",
        "CPU": "0.5",
        "VCPU": "1",
        "MEMORY": "192",
        "OS": {
            "KERNEL_DS": f"$FILE[IMAGE_ID={ids['tiny-kernel']}]",
            "INITRD_DS": f"$FILE[IMAGE_ID={ids['tiny-initrd']}]",
            "KERNEL_CMD": tiny_microvm.template["OS"]["KERNEL_CMD"],
        },
        "DISK": disk,
        "READY_MARKER": MARKER,
    }
    container = {"HYPERVISOR": "lxc", "CPU": "0.1", "MEMORY": "64", "DISK": disk}
    admin.templates.create(name="app-microvm", template=microvm)
    admin.templates.create(name="app-container", template={**container, "READY_MARKER": MARKER})


@pytest.fixture(scope="module", autouse=True)
def nothing_left_running(two_hosts: list[NetHost]) -> Iterator[None]:
    """After the module (passed or not): kill our QEMUs by PID, stop our containers."""
    yield
    for net in two_hosts:
        for line in guest_processes(net):
            net.exec(["kill", "-9", line.split()[0]])
        lxc = net.root / "lxc"
        for container in lxc.iterdir() if lxc.is_dir() else []:
            net.exec(["lxc-stop", "-k", "-n", container.name, "-P", str(lxc)])


def terminate(admin: Client, vm_id: int, *, hard: bool = True) -> None:
    """Terminate a VM unless it is gone already; wait for DONE."""
    if admin.vms.get(vm_id).state_name != "DONE":
        admin.vms.action(vm_id, "terminate", hard=hard)
        wait_vms(admin, [vm_id], lambda s: s == "DONE", timeout=60)


def boot(admin: Client, template: str, host: Host) -> tuple[int, str, float]:
    """Create a VM on `host`; return (id, deploy id, seconds from create to RUNNING)."""
    started = time.monotonic()
    vm = create_on(admin, template, host)
    try:
        wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    except BaseException:
        terminate(admin, vm.id)
        raise
    return vm.id, admin.vms.get(vm.id).deploy_id, time.monotonic() - started


def test_an_app_image_runs_as_a_microvm(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], app_templates: None
) -> None:
    host, net = hosts[0], two_hosts[0]
    vm_id, deploy_id, took = boot(admin, "app-microvm", host)
    try:
        log = admin.vms.console_log(vm_id)
        assert "EDGECLOUD-READY" in log  # the tiny /init, which handed over to the app
        assert STARTED.split("pid=")[0] in log and STARTED.split("{pid}")[1] in log
        (line,) = [p for p in guest_processes(net) if deploy_id in p]
        assert "microvm" in line and "ec.app=/ec-root" in line
        assert f"{deploy_id}/initrd.img" in line  # the tiny initrd with the rootfs appended
        # Graceful stop: the power button makes /init send SIGTERM; the app exits; power off.
        admin.vms.action(vm_id, "poweroff")
        wait_vms(admin, [vm_id], lambda s: s == "POWEROFF", timeout=60)
        log = admin.vms.console_log(vm_id)
        assert "APP-STOPPING" in log and "application exited with status 0" in log
        assert not [p for p in guest_processes(net) if deploy_id in p]
        terminate(admin, vm_id)
        assert leftovers(net, deploy_id) == []
    finally:
        terminate(admin, vm_id)
    tiny_id, tiny_deploy, tiny_took = boot(admin, "tiny-microvm", host)
    terminate(admin, tiny_id)
    assert leftovers(net, tiny_deploy) == []
    print(f"\nmicrovm create -> RUNNING: app image {took:.2f} s, tiny-microvm {tiny_took:.2f} s")


def test_an_app_image_runs_as_an_lxc_container(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], app_templates: None
) -> None:
    host, net = hosts[1], two_hosts[1]
    vm_id, deploy_id, took = boot(admin, "app-container", host)
    try:
        assert STARTED.format(pid=1) in admin.vms.console_log(vm_id)
        # The app is the container's PID 1, with the image's arguments, cwd and environment.
        cmdline = attach(net, deploy_id, ["cat", "/proc/1/cmdline"])
        assert cmdline.returncode == 0, cmdline.stderr
        assert cmdline.stdout.split("\0")[:4] == [
            "/bin/sh",
            "/app/run.sh",
            "serve",
            "--greeting=hello",
        ]
        assert "/app/run.sh" in attach(net, deploy_id, ["ps"]).stdout
        assert attach(net, deploy_id, ["readlink", "/proc/1/cwd"]).stdout.strip() == "/app"
        environ = attach(net, deploy_id, ["cat", "/proc/1/environ"]).stdout.split("\0")
        assert "GREETING=hello from oci" in environ
        uid_map = attach(net, deploy_id, ["cat", "/proc/self/uid_map"]).stdout.split()
        assert uid_map[1] != "0"  # unprivileged
        config = (net.root / "lxc" / deploy_id / "config").read_text()
        assert "lxc.init.cmd = /app/run.sh serve --greeting=hello" in config
        admin.vms.action(vm_id, "poweroff")  # lxc.signal.halt = SIGTERM: the app exits at once
        wait_vms(admin, [vm_id], lambda s: s == "POWEROFF", timeout=30)
        assert "APP-STOPPING" in admin.vms.console_log(vm_id)
        terminate(admin, vm_id, hard=False)
        assert leftovers(net, deploy_id) == []
    finally:
        terminate(admin, vm_id)
    print(f"\nlxc app container create -> RUNNING: {took:.2f} s")


def test_an_uploaded_app_image_reaches_its_host_through_the_cache(
    tiny: Tiny,
    frontend: RunningFrontEnd,
    admin: Client,
    hosts: list[Host],
    two_hosts: list[NetHost],
    tmp_path: Path,
) -> None:
    """`import-oci --upload`: the rootfs goes into the image datastore as a tar; the host
    unpacks it into its cache and the app runs from there as a container."""
    build_layout(tmp_path / "layout", tiny.rootfs)
    auth = f"{frontend.admin_user}:{frontend.admin_password}"
    argv = ["--url", frontend.url, "--auth", auth, "image", "import-oci", str(tmp_path / "layout")]
    result = CliRunner().invoke(cli, [*argv, "--name", "app-up", "--ref", "app", "--upload"])
    assert result.exit_code == 0, result.output
    image = admin.images.get(int(result.stdout.split()[-1]))
    assert (image.format, image.state_name, image.path) == ("dir", "READY", "")
    assert image.checksum.startswith("sha256:") and image.template["OCI_ENTRYPOINT"]
    vm = admin.vms.create(
        name="app-up",
        template={
            "HYPERVISOR": "lxc",
            "CPU": "0.1",
            "MEMORY": "64",
            "DISK": [{"IMAGE_ID": str(image.id)}],
            "READY_MARKER": MARKER,
            "SCHED_REQUIREMENTS": f"ID={hosts[0].id}",
        },
    )
    try:
        wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        assert STARTED.format(pid=1) in admin.vms.console_log(vm.id)
        key = image.checksum.removeprefix("sha256:")
        assert (two_hosts[0].root / "cache" / "images" / key / "app" / "run.sh").is_file()
    finally:
        terminate(admin, vm.id)
