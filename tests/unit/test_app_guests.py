"""Application guests: template -> node spec, the node's spec checks, LXC keys, app initrd."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from edgecloud.drivers.base import DriverError, GuestSpec
from edgecloud.drivers.hypervisor.spec import node_spec
from edgecloud.images import guest_files
from edgecloud.images.cpio import read_newc
from edgecloud.node import appfs
from edgecloud.node.guest import GuestDir, parse_spec
from edgecloud.node.lxc import init_in_config, render_config
from edgecloud.node.protocol import NodeError

pytestmark = pytest.mark.unit

APP_DISK = {
    "IMAGE_ID": "4",
    "SOURCE": "/var/lib/edgecloud/images/app/rootfs",
    "FORMAT": "dir",
    "TYPE": "OS",
    "OCI_ENTRYPOINT": '["/app/run.sh"]',
    "OCI_CMD": '["--port", "80"]',
    "OCI_ENV": '["PATH=/bin", "A=b c"]',
    "OCI_WORKDIR": "/app",
}
OS_BOOT = {"KERNEL": "/k/vmlinuz", "INITRD": "/k/initrd.img", "KERNEL_CMD": "console=ttyS0"}


def guest(template: dict[str, Any]) -> GuestSpec:
    return GuestSpec(vm_id=3, name="app", template=template, deploy_id="one-3")


def test_an_lxc_app_image_runs_its_entrypoint_and_cmd() -> None:
    spec = node_spec(guest({"DISK": [APP_DISK]}), "lxc")
    assert spec["rootfs"] == APP_DISK["SOURCE"]
    assert spec["init"] == ["/app/run.sh", "--port", "80"]
    assert spec["env"] == ["PATH=/bin", "A=b c"]
    assert spec["workdir"] == "/app"


def test_a_microvm_boots_a_dir_image_as_its_rootfs() -> None:
    data = {"SOURCE": "/data.qcow2", "FORMAT": "qcow2", "TYPE": "DATABLOCK"}
    spec = node_spec(guest({"OS": OS_BOOT, "DISK": [APP_DISK, data]}), "microvm")
    assert spec["rootfs"] == APP_DISK["SOURCE"]
    assert spec["init"] == ["/app/run.sh", "--port", "80"]
    assert spec["disks"] == [{"path": "/data.qcow2", "format": "qcow2", "readonly": False}]
    assert (spec["kernel"], spec["initrd"]) == ("/k/vmlinuz", "/k/initrd.img")


def test_a_plain_rootfs_image_has_no_app_fields() -> None:
    disk = {"SOURCE": "/tiny/rootfs", "FORMAT": "dir", "TYPE": "OS"}
    spec = node_spec(guest({"DISK": [disk]}), "lxc")
    assert not {"init", "env", "workdir"} & set(spec)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ({"OS": {"KERNEL": "/k"}, "DISK": [APP_DISK]}, "INITRD_DS"),
        ({"OS": OS_BOOT, "DISK": [APP_DISK, APP_DISK]}, "one rootfs directory"),
        ({"OS": OS_BOOT, "DISK": [{**APP_DISK, "OCI_CMD": "[oops"}]}, "not JSON"),
        ({"OS": OS_BOOT, "DISK": [{**APP_DISK, "OCI_ENV": '{"A": 1}'}]}, "list of strings"),
    ],
)
def test_bad_app_templates_are_refused(template: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DriverError, match=fragment):
        node_spec(guest(template), "microvm")


def app_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deploy_id": "one-3",
        "rootfs": "/srv/app",
        "init": ["/app/run.sh", "--port", "80"],
        "env": ["PATH=/bin", "A=b c"],
        "workdir": "/app",
        "memory_mb": 64,
    }
    spec.update(overrides)
    return spec


@pytest.mark.parametrize(
    ("kind", "overrides", "fragment"),
    [
        ("lxc", {"init": "/bin/sh"}, "list of strings"),
        ("lxc", {"init": ["/bin/sh", "a\nb"]}, "line break"),
        ("lxc", {"init": [""]}, "empty"),
        ("lxc", {"env": ["NOVALUE"]}, "NAME=value"),
        ("lxc", {"env": ["=x"]}, "NAME=value"),
        ("lxc", {"workdir": "relative"}, "absolute"),
        ("microvm", {"kernel": "/k"}, "'kernel' and 'initrd'"),
    ],
)
def test_parse_spec_checks_the_app_fields(
    kind: str, overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(NodeError) as caught:
        parse_spec(app_spec(**overrides), kind)
    assert caught.value.kind == "bad_request"
    assert fragment in caught.value.message


def config_lines(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(" = ", 1)) for line in text.splitlines()]  # type: ignore[misc]


def test_an_app_container_config_runs_the_app() -> None:
    spec = parse_spec(app_spec(), "lxc")
    lines = config_lines(render_config(spec, GuestDir(Path("/r"), "one-3"), None, {}))
    assert ("lxc.init.cmd", "/app/run.sh --port 80") in lines
    assert ("lxc.init.cwd", "/app") in lines
    assert [v for k, v in lines if k == "lxc.environment"] == ["PATH=/bin", "A=b c"]
    assert ("lxc.signal.halt", "SIGTERM") in lines
    assert not any(k == "lxc.signal.reboot" for k, _ in lines)


def test_an_app_argument_with_a_space_goes_to_lxc_start_instead() -> None:
    spec = parse_spec(app_spec(init=["/app/run.sh", "hello world"]), "lxc")
    assert not init_in_config(spec)
    lines = config_lines(render_config(spec, GuestDir(Path("/r"), "one-3"), None, {}))
    assert not any(k == "lxc.init.cmd" for k, _ in lines)
    plain = parse_spec({"deploy_id": "one-3", "rootfs": "/srv/tiny"}, "lxc")
    assert init_in_config(plain)
    lines = config_lines(render_config(plain, GuestDir(Path("/r"), "one-3"), None, {}))
    assert ("lxc.signal.halt", "SIGUSR2") in lines
    assert ("lxc.environment", "CONSOLE=/dev/console") in lines


def test_parse_spec_env_refuses_line_breaks_that_would_make_config_keys() -> None:
    with pytest.raises(NodeError):
        parse_spec(app_spec(env=["A=1\nlxc.hook.pre-start = /bin/evil"]), "lxc")


def test_the_app_initrd_is_the_base_then_the_rootfs_and_its_command(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "app").mkdir(parents=True)
    (rootfs / "app" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (rootfs / "app" / "run.sh").chmod(0o750)
    (rootfs / "app" / "link").symlink_to("run.sh")
    os.mkfifo(rootfs / "fifo")
    base = tmp_path / "initrd.img"
    base.write_bytes(b"\x1f\x8bgzipped-base")
    spec = parse_spec(
        app_spec(rootfs=str(rootfs), kernel="/k", initrd=str(base), cmdline="console=ttyS0"),
        "microvm",
    )
    booted = appfs.with_app(tmp_path / "guest", spec)
    assert booted["cmdline"] == "console=ttyS0 ec.app=/ec-root"
    assert booted["base_initrd"] == str(base)
    assert appfs.with_app(tmp_path / "guest", booted)["cmdline"].count("ec.app=") == 1
    data = Path(booted["initrd"]).read_bytes()
    assert data.startswith(base.read_bytes())
    assert len(data) % 512 == 0
    entries = {name: (mode, body) for name, mode, body, _ in read_newc(data[512:])}
    assert list(entries)[:2] == ["ec-root", "ec-root/app"]  # parents before children
    mode, body = entries["ec-root/app/run.sh"]
    assert (stat.S_ISREG(mode), stat.S_IMODE(mode), body) == (True, 0o750, b"#!/bin/sh\necho hi\n")
    mode, body = entries["ec-root/app/link"]
    assert stat.S_ISLNK(mode) and body == b"run.sh"
    assert stat.S_ISFIFO(entries["ec-root/fifo"][0])
    assert entries["ec-root/.edgecloud/argv"][1] == b"/app/run.sh\n--port\n80\n"
    assert entries["ec-root/.edgecloud/env"][1] == b"PATH=/bin\nA=b c\n"
    assert entries["ec-root/.edgecloud/workdir"][1] == b"/app\n"


def test_the_app_program_name_cannot_look_like_an_assignment(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "initrd").write_bytes(b"base")
    spec = app_spec(rootfs=str(tmp_path / "rootfs"), initrd=str(tmp_path / "initrd"))
    spec["init"] = ["A=b"]
    with pytest.raises(NodeError, match="'='"):
        appfs.build_initrd(tmp_path, spec)


def test_the_tiny_init_hands_over_to_the_app_when_asked() -> None:
    assert 'ec.app=/?*) app="${arg#ec.app=}"' in guest_files.VM_INIT
    assert 'exec /etc/tiny/app "$app"' in guest_files.VM_INIT
    assert guest_files.VM_FILES["etc/tiny/app"] == (guest_files.APP_INIT, 0o755)
    assert guest_files.MARKER in guest_files.APP_INIT
    assert "env -i --" in guest_files.APP_RUN
