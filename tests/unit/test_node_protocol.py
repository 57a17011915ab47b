"""Unit tests for the node code: the dispatcher, the zipapp, QEMU argv, LXC config, rootfs copy."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node import __main__ as node_main
from edgecloud.node.build import build_zipapp, node_version
from edgecloud.node.guest import GuestDir, parse_spec, wait_for_text
from edgecloud.node.lxc import cgroup_versions, render_config
from edgecloud.node.probe import probe_firmware
from edgecloud.node.protocol import NodeError
from edgecloud.node.qemu_argv import microvm_cmdline, qemu_argv
from edgecloud.node.rootfs import copy_tree, shifted

pytestmark = pytest.mark.unit

HOST_PYTHON = "/usr/bin/python3"


def answer(action: str, request: dict[str, Any] | str) -> tuple[int, dict[str, Any]]:
    """Run the node's main() on a request; return (exit status, the one JSON answer)."""
    raw = request if isinstance(request, str) else json.dumps(request)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = node_main.main([action], stdin=io.StringIO(raw))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    return code, json.loads(lines[0])


def kvm_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deploy_id": "one-7",
        "vm_id": 7,
        "name": "web",
        "vcpu": 2,
        "memory_mb": 256,
        "kernel": "/images/vmlinuz",
        "initrd": "/images/initrd.img",
        "cmdline": "console=ttyS0",
        "ready_marker": "READY",
    }
    spec.update(overrides)
    return spec


# --- the dispatcher ---------------------------------------------------------------------


def test_dispatch_unknown_action_is_bad_request(tmp_path: Path) -> None:
    code, reply = answer("explode", {"root": str(tmp_path)})
    assert code == 1
    assert reply["ok"] is False
    assert reply["kind"] == "bad_request"
    assert "explode" in reply["error"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ("{}", "root"),
        ('{"root": "relative/dir", "kind": "kvm", "deploy_id": "one-1"}', "absolute"),
    ],
)
def test_dispatch_malformed_request_is_bad_request(raw: str, fragment: str) -> None:
    code, reply = answer("poll", raw)
    assert (code, reply["ok"], reply["kind"]) == (1, False, "bad_request")
    assert fragment in reply["error"]


@pytest.mark.parametrize("deploy_id", ["../etc", "one-", "one-1/..", "one-1\n", "two-3", 5])
def test_dispatch_rejects_deploy_ids_that_are_not_one_digits(
    tmp_path: Path, deploy_id: object
) -> None:
    request = {"root": str(tmp_path), "kind": "kvm", "deploy_id": deploy_id}
    code, reply = answer("cleanup", request)
    assert (code, reply["kind"]) == (1, "bad_request")
    assert not (tmp_path / "guests").exists()


def test_dispatch_unknown_kind_is_bad_request(tmp_path: Path) -> None:
    request = {"root": str(tmp_path), "kind": "xen", "deploy_id": "one-1"}
    code, reply = answer("poll", request)
    assert (code, reply["kind"]) == (1, "bad_request")


def test_dispatch_unexpected_exception_is_failed_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(request: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(node_main.ACTIONS, "poll", boom)
    code, reply = answer("poll", {"root": str(tmp_path)})
    assert code == 1
    assert reply == {"ok": False, "kind": "failed", "error": "ZeroDivisionError: boom"}


def test_dispatch_poll_of_unknown_guest_says_missing(tmp_path: Path) -> None:
    code, reply = answer("poll", {"root": str(tmp_path), "kind": "lxc", "deploy_id": "one-42"})
    assert code == 0
    status = reply["result"]
    assert status["state"] == "missing"
    assert (status["deploy_id"], status["vm_id"], status["kind"]) == ("one-42", 42, "lxc")
    assert set(status) >= {"privileged", "figures"}


def test_dispatch_kind_is_optional_after_deploy(tmp_path: Path) -> None:
    code, reply = answer("poll", {"root": str(tmp_path), "deploy_id": "one-8"})
    assert (code, reply["result"]["state"], reply["result"]["kind"]) == (0, "missing", "kvm")
    guest = GuestDir(tmp_path, "one-8")
    guest.container.mkdir(parents=True)
    code, reply = answer("poll", {"root": str(tmp_path), "deploy_id": "one-8"})
    assert (code, reply["result"]["kind"]) == (0, "lxc")
    guest.path.mkdir(parents=True)
    guest.spec.write_text(json.dumps({"kind": "microvm", "vm_id": 8}))
    code, reply = answer("poll_all", {"root": str(tmp_path)})
    assert [(g["deploy_id"], g["kind"], g["state"]) for g in reply["result"]["guests"]] == [
        ("one-8", "microvm", "stopped")
    ]
    assert answer("cleanup", {"root": str(tmp_path), "deploy_id": "one-8"})[0] == 0
    assert not guest.exists()


def test_dispatch_poll_all_of_empty_root_lists_nothing(tmp_path: Path) -> None:
    assert answer("poll_all", {"root": str(tmp_path)}) == (
        0,
        {"ok": True, "result": {"guests": []}},
    )


def test_dispatch_shutdown_and_cleanup_of_missing_guest_succeed(tmp_path: Path) -> None:
    request = {"root": str(tmp_path), "kind": "kvm", "deploy_id": "one-3", "hard": False}
    assert answer("shutdown", request) == (0, {"ok": True, "result": {}})
    assert answer("cleanup", request) == (0, {"ok": True, "result": {}})


def test_dispatch_console_log_of_missing_guest_is_missing(tmp_path: Path) -> None:
    code, reply = answer("console_log", {"root": str(tmp_path), "deploy_id": "one-3"})
    assert (code, reply["kind"]) == (1, "missing")


def test_dispatch_console_log_returns_the_tail(tmp_path: Path) -> None:
    guest = GuestDir(tmp_path, "one-3")
    guest.path.mkdir(parents=True)
    guest.console.write_bytes(b"boot\nEDGECLOUD-READY\n\xff")
    request = {"root": str(tmp_path), "deploy_id": "one-3", "tail_bytes": 17}
    code, reply = answer("console_log", request)
    assert code == 0
    assert reply["result"]["text"] == "EDGECLOUD-READY\n\ufffd"


def test_dispatch_lxc_save_is_refused(tmp_path: Path) -> None:
    request = {"root": str(tmp_path), "kind": "lxc", "deploy_id": "one-3"}
    code, reply = answer("save", request)
    assert (code, reply["kind"]) == (1, "failed")
    assert "CRIU" in reply["error"]


def test_dispatch_deploy_with_bad_spec_is_bad_request(tmp_path: Path) -> None:
    spec = kvm_spec(kernel="relative/vmlinuz")
    code, reply = answer("deploy", {"root": str(tmp_path), "kind": "kvm", "spec": spec})
    assert (code, reply["kind"]) == (1, "bad_request")
    assert "absolute" in reply["error"]


# --- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "overrides", "fragment"),
    [
        ("microvm", {"kernel": None}, "kernel"),
        ("kvm", {"kernel": None, "disks": []}, "kernel' or 'disks"),
        ("kvm", {"disks": [{"path": "/d.img", "format": "vmdk"}]}, "qcow2 or raw"),
        ("kvm", {"vcpu": 0}, "vcpu"),
        ("kvm", {"memory_mb": "lots"}, "memory_mb"),
        ("kvm", {"deploy_id": "one-1;rm"}, "deploy_id"),
        ("lxc", {}, "rootfs"),
    ],
)
def test_parse_spec_refuses_bad_fields(kind: str, overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(NodeError) as caught:
        parse_spec(kvm_spec(**overrides), kind)
    assert caught.value.kind == "bad_request"
    assert fragment in caught.value.message


def test_parse_spec_fills_defaults() -> None:
    spec = parse_spec({"deploy_id": "one-9", "rootfs": "/srv/rootfs"}, "lxc")
    assert spec["vm_id"] == 9
    assert spec["boot_timeout"] == 60.0
    assert spec["privileged"] is False
    assert spec["disks"] == []


# --- QEMU argv --------------------------------------------------------------------------


def test_qemu_argv_kernel_boot_on_pc_with_tcg() -> None:
    spec = parse_spec(kvm_spec(), "kvm")
    argv = qemu_argv(spec, Path("/r/guests/one-7"), "tcg")
    assert argv[0] == "qemu-system-x86_64"
    joined = " ".join(argv)
    for part in (
        "-name guest=one-7",
        "-machine pc",
        "-accel tcg",
        "-m 256",
        "-smp 2",
        "-nodefaults",
        "-no-user-config",
        "-display none",
        "-chardev file,id=console,path=/r/guests/one-7/console.log,append=on",
        "-serial chardev:console",
        "-qmp unix:qmp.sock,server=on,wait=off",
        "-pidfile /r/guests/one-7/qemu.pid",
        "-daemonize",
        "-kernel /images/vmlinuz",
        "-initrd /images/initrd.img",
    ):
        assert part in joined
    assert argv[argv.index("-append") + 1] == "console=ttyS0"
    assert "-cpu" not in argv
    assert "-vnc" not in argv


def test_qemu_argv_kvm_uses_host_cpu() -> None:
    argv = qemu_argv(parse_spec(kvm_spec(), "kvm"), Path("/r/g"), "kvm")
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"


def test_qemu_argv_disks_are_virtio_escaped_and_readonly() -> None:
    disks = [
        {"path": "/ds/0/one,7/disk.0", "format": "qcow2", "readonly": False},
        {"path": "/ds/0/ctx.iso", "format": "raw", "readonly": True},
    ]
    spec = parse_spec(kvm_spec(kernel=None, initrd=None, cmdline=None, disks=disks), "kvm")
    argv = qemu_argv(spec, Path("/r/g"), "tcg")
    drives = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-drive"]
    assert drives == [
        "id=disk0,file=/ds/0/one,,7/disk.0,format=qcow2,if=virtio",
        "id=disk1,file=/ds/0/ctx.iso,format=raw,readonly=on,if=virtio",
    ]
    assert "-kernel" not in argv


def test_qemu_argv_microvm_uses_mmio_disks_and_a_safe_cmdline() -> None:
    disks = [{"path": "/ds/d.img", "format": "raw"}]
    spec = parse_spec(kvm_spec(disks=disks, cmdline="console=ttyS0"), "microvm")
    argv = qemu_argv(spec, Path("/r/g"), "tcg", tsc_khz=2300000)
    assert argv[argv.index("-machine") + 1] == "microvm"
    assert argv[argv.index("-append") + 1] == (
        "console=ttyS0 earlyprintk=ttyS0 tsc_early_khz=2300000"
    )
    assert "id=disk0,file=/ds/d.img,format=raw,if=none" in argv
    assert "virtio-blk-device,drive=disk0" in argv


def test_microvm_cmdline_keeps_what_the_front_end_gave() -> None:
    given = "earlyprintk=serial tsc_early_khz=1000 quiet"
    assert microvm_cmdline(given, 2300000) == given
    assert microvm_cmdline("", None) == "earlyprintk=ttyS0"


def test_qemu_argv_vnc_adds_a_display() -> None:
    argv = qemu_argv(parse_spec(kvm_spec(vnc=True), "kvm"), Path("/r/g"), "tcg")
    assert argv[argv.index("-vnc") + 1] == "unix:vnc.sock"
    assert argv[argv.index("-vga") + 1] == "std"


# --- LXC config -------------------------------------------------------------------------

MOUNTINFO_HYBRID = """\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 30 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def test_cgroup_versions_reads_v1_controllers() -> None:
    assert cgroup_versions(MOUNTINFO_HYBRID) == {"cpu": 1, "memory": 1}


def test_cgroup_versions_reads_unified_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    info = f"40 1 0:35 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    assert cgroup_versions(info) == {"cpu": 2, "memory": 2}


def lxc_spec(**overrides: Any) -> dict[str, Any]:
    spec = parse_spec({"deploy_id": "one-4", "rootfs": "/srv/rootfs", "memory_mb": 64}, "lxc")
    spec.update(overrides)
    return spec


def config_lines(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(" = ", 1)) for line in text.splitlines()]  # type: ignore[misc]


def test_render_config_unprivileged_v1() -> None:
    guest = GuestDir(Path("/var/lib/edgecloud"), "one-4")
    lines = config_lines(render_config(lxc_spec(), guest, 100000, {"memory": 1, "cpu": 1}))
    assert ("lxc.rootfs.path", "dir:/var/lib/edgecloud/lxc/one-4/rootfs") in lines
    assert ("lxc.console.logfile", "/var/lib/edgecloud/guests/one-4/console.log") in lines
    assert ("lxc.signal.halt", "SIGUSR2") in lines
    assert ("lxc.cgroup.relative", "1") in lines
    assert ("lxc.net.0.type", "empty") in lines
    assert ("lxc.idmap", "u 0 100000 65536") in lines
    assert ("lxc.idmap", "g 0 100000 65536") in lines
    assert ("lxc.cgroup.memory.limit_in_bytes", str(64 * 2**20)) in lines
    assert ("lxc.cgroup.cpu.cfs_quota_us", "100000") in lines


def test_render_config_privileged_v2() -> None:
    guest = GuestDir(Path("/r"), "one-4")
    text = render_config(lxc_spec(vcpu=2), guest, None, {"memory": 2, "cpu": 2})
    lines = config_lines(text)
    assert not any(key == "lxc.idmap" for key, _ in lines)
    assert ("lxc.cgroup2.memory.max", str(64 * 2**20)) in lines
    assert ("lxc.cgroup2.cpu.max", "200000 100000") in lines


def test_render_config_refuses_line_breaks() -> None:
    guest = GuestDir(Path("/r\nlxc.hook.pre-start = /bin/evil"), "one-4")
    with pytest.raises(NodeError) as caught:
        render_config(lxc_spec(), guest, None, {})
    assert caught.value.kind == "bad_request"


# --- rootfs copy ------------------------------------------------------------------------


def test_shifted_maps_into_the_range() -> None:
    assert shifted(0, 100000) == 100000
    assert shifted(1000, 100000) == 101000
    assert shifted(70000, 100000) == 165534
    assert shifted(1000, 0) == 1000


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_copy_tree_shifts_owners_and_keeps_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "etc").mkdir(mode=0o750)
    (src / "bin" / "busybox").write_bytes(b"\x7fELF")
    (src / "bin" / "busybox").chmod(0o4755)
    (src / "bin" / "sh").symlink_to("busybox")
    os.link(src / "bin" / "busybox", src / "bin" / "ash")
    (src / "etc" / "shadow").write_text("root:*:1::::::\n")
    os.chown(src / "etc" / "shadow", 0, 42)
    (src / "etc" / "shadow").chmod(0o640)
    os.mkfifo(src / "etc" / "fifo")
    os.chown(src / "etc", 1000, 1000)
    os.utime(src / "bin" / "busybox", (1_000_000, 1_000_000))
    dst = tmp_path / "dst"
    copy_tree(src, dst, 100000)

    def owner(path: Path) -> tuple[int, int]:
        info = os.lstat(path)
        return info.st_uid, info.st_gid

    assert owner(dst) == (100000, 100000)
    assert owner(dst / "etc") == (101000, 101000)
    assert stat.S_IMODE(os.lstat(dst / "etc").st_mode) == 0o750
    assert owner(dst / "etc" / "shadow") == (100000, 100042)
    assert stat.S_IMODE(os.lstat(dst / "etc" / "shadow").st_mode) == 0o640
    assert stat.S_IMODE(os.lstat(dst / "bin" / "busybox").st_mode) == 0o4755  # setuid kept
    assert os.lstat(dst / "bin" / "busybox").st_mtime == 1_000_000
    assert os.readlink(dst / "bin" / "sh") == "busybox"
    assert owner(dst / "bin" / "sh") == (100000, 100000)
    assert os.lstat(dst / "bin" / "ash").st_ino == os.lstat(dst / "bin" / "busybox").st_ino
    assert stat.S_ISFIFO(os.lstat(dst / "etc" / "fifo").st_mode)
    assert (dst / "etc" / "shadow").read_text() == "root:*:1::::::\n"


# --- console waits, probe firmware ----------------------------------------------------


def test_wait_for_text_sees_only_new_output(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("old READY\n")
    offset = log.stat().st_size
    assert not wait_for_text(log, "READY", offset, 0.0, lambda: True)
    with log.open("a") as out:
        out.write("booting\nREADY\n")
    assert wait_for_text(log, "READY", offset, 0.0, lambda: True)


def test_probe_firmware_has_a_reset_vector() -> None:
    image = probe_firmware()
    assert len(image) == 65536
    assert image[0xFFF0] == 0xE9  # jmp near, to the code at offset 0
    assert image[0] == 0xFA  # cli


# --- the zipapp -------------------------------------------------------------------------


def test_build_zipapp_is_deterministic(tmp_path: Path) -> None:
    first = build_zipapp(tmp_path / "a" / "node.pyz")
    second = build_zipapp(tmp_path / "b" / "node.pyz")
    assert first == second == node_version()
    assert len(first) == 64
    assert (tmp_path / "a" / "node.pyz").read_bytes() == (tmp_path / "b" / "node.pyz").read_bytes()


@pytest.mark.skipif(not Path(HOST_PYTHON).exists(), reason="no /usr/bin/python3")
def test_zipapp_runs_with_the_host_python(tmp_path: Path) -> None:
    pyz = tmp_path / "node.pyz"
    version = build_zipapp(pyz)
    done = subprocess.run(
        [HOST_PYTHON, str(pyz), "version"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "result": {"version": version}}
    # poll_all imports the QEMU code and with it the bundled qemu.qmp
    request = json.dumps({"root": str(tmp_path / "root")})
    done = subprocess.run(
        [HOST_PYTHON, str(pyz), "poll_all"],
        input=request,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONNOUSERSITE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "result": {"guests": []}}
    done = subprocess.run(
        [HOST_PYTHON, str(pyz), "nonsense"], input="{}", capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["kind"] == "bad_request"
