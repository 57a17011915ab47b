"""The node zipapp on this machine: real QEMU (TCG here) and LXC guests, driven as the
front-end drives them (`/usr/bin/python3 node.pyz ACTION`, JSON on stdin), ROOT a temp dir.

Whatever a test leaves behind is cleaned up by PID (QEMU) or by name under this ROOT (LXC)
even when it fails; nothing outside ROOT is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.images.tiny import Tiny, ensure_tiny
from edgecloud.node.build import build_zipapp
from edgecloud.node.probe import kvm_probe

pytestmark = pytest.mark.host

HOST_PYTHON = "/usr/bin/python3"
BOOT = 120.0  # seconds a TCG boot may take on a loaded 2-core machine
SUBIDS = "100000-165535"


class Node:
    """Runs node actions against one ROOT."""

    def __init__(self, pyz: Path, root: Path) -> None:
        self.pyz = pyz
        self.root = root

    def call(self, action: str, timeout: float = BOOT + 60, **fields: Any) -> dict[str, Any]:
        """Run an action; return the whole answer ({"ok", "result"} or the error)."""
        request = json.dumps({"root": str(self.root), **fields})
        done = subprocess.run(
            [HOST_PYTHON, str(self.pyz), action],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = done.stdout.splitlines()
        assert len(lines) == 1, (done.stdout, done.stderr)
        answer: dict[str, Any] = json.loads(lines[0])
        assert done.returncode == (0 if answer["ok"] else 1)
        return answer

    def ok(self, action: str, **fields: Any) -> dict[str, Any]:
        """Run an action that must succeed; return its result."""
        answer = self.call(action, **fields)
        assert answer["ok"], answer
        result: dict[str, Any] = answer["result"]
        return result

    def poll(self, kind: str, deploy_id: str) -> dict[str, Any]:
        """Return a guest's status."""
        return self.ok("poll", kind=kind, deploy_id=deploy_id)

    def qemu_pids(self) -> list[int]:
        """Return the PIDs of live QEMUs whose command line names this ROOT."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ours = any(str(self.root).encode() in arg for arg in argv)
            if ours and argv[0].endswith(b"qemu-system-x86_64"):
                found.append(int(entry.name))
        return found

    def console(self, deploy_id: str) -> str:
        """Return the guest's whole console log."""
        return str(self.ok("console_log", deploy_id=deploy_id, tail_bytes=1 << 20)["text"])


def _kill_leftovers(node: Node) -> None:
    """Kill what a test left running under its ROOT: QEMU by PID, LXC by name."""
    for pid in set(node.qemu_pids()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(node.root).encode() in argv:
            os.kill(pid, signal.SIGKILL)
    lxc = node.root / "lxc"
    if lxc.is_dir():
        for container in lxc.iterdir():
            subprocess.run(
                ["lxc-stop", "-k", "-n", container.name, "-P", str(lxc)],
                capture_output=True,
                timeout=30,
            )


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node zipapp, built from this checkout."""
    path = tmp_path_factory.mktemp("node") / "node.pyz"
    build_zipapp(path)
    return path


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    """The tiny images (built once per machine, then cached)."""
    return ensure_tiny()


def _fresh_root() -> Path:
    """Return a new ROOT, searchable by others (unprivileged LXC needs that)."""
    root = Path(tempfile.mkdtemp(prefix="ecnode-", dir="/tmp"))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def kvm_verdict(pyz: Path) -> Iterator[bytes]:
    """The KVM probe's cached verdict, probed once (each new ROOT would take 5 s)."""
    root = _fresh_root()
    try:
        Node(pyz, root).ok("probe")
        yield (root / "cache" / "kvm-probe.json").read_bytes()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def node(pyz: Path, kvm_verdict: bytes) -> Iterator[Node]:
    """A Node on a fresh ROOT whose cache already has the KVM verdict."""
    if not shutil.which("qemu-system-x86_64") or not shutil.which("lxc-start"):
        pytest.skip("needs qemu-system-x86 and lxc")
    root = _fresh_root()
    (root / "cache").mkdir()
    (root / "cache" / "kvm-probe.json").write_bytes(kvm_verdict)
    node = Node(pyz, root)
    try:
        yield node
    finally:
        _kill_leftovers(node)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def root_subids() -> None:
    """Give root an id range for unprivileged containers if the host has none.

    Host setup's job on a real host; LXC (with newuidmap installed) insists on it.
    """
    for name in ("subuid", "subgid"):
        lines = (
            Path(f"/etc/{name}").read_text().splitlines() if Path(f"/etc/{name}").exists() else []
        )
        if any(line.startswith(("root:", "0:")) for line in lines):
            continue
        flag = "--add-subuids" if name == "subuid" else "--add-subgids"
        subprocess.run(["usermod", flag, SUBIDS, "root"], check=True, capture_output=True)


def kernel_spec(tiny: Tiny, vm_id: int, cmdline: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "deploy_id": f"one-{vm_id}",
        "vm_id": vm_id,
        "name": f"vm{vm_id}",
        "vcpu": 1,
        "memory_mb": 256,
        "kernel": str(tiny.kernel),
        "initrd": str(tiny.initrd),
        "cmdline": cmdline,
        "ready_marker": tiny.marker,
        "boot_timeout": BOOT,
    }
    spec.update(extra)
    return spec


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_node_probe_reports_real_figures(node: Node) -> None:
    (node.root / "cache" / "kvm-probe.json").unlink()
    started = time.monotonic()
    facts = node.ok("probe")
    cold = time.monotonic() - started
    assert facts["cpu"] == os.cpu_count()
    assert facts["memory_mb"] > 0 and 0 <= facts["used_memory_mb"] <= facts["memory_mb"]
    assert 0 < facts["free_disk_mb"] <= facts["total_disk_mb"]
    assert set(facts["hypervisors"]) == {"kvm", "lxc", "microvm"}
    assert isinstance(facts["kvm"], bool)
    assert facts["qemu_version"] and facts["lxc_version"]
    assert len(facts["version"]) == 64
    assert cold < 15  # the KVM probe gives up after 5 s
    cached = json.loads((node.root / "cache" / "kvm-probe.json").read_text())
    assert cached["kvm"] is facts["kvm"]
    started = time.monotonic()
    assert node.ok("probe")["kvm"] is facts["kvm"]
    assert time.monotonic() - started < 3  # cached
    assert not node.qemu_pids()


def test_kvm_probe_firmware_reaches_long_mode_under_tcg(tmp_path: Path) -> None:
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("needs qemu-system-x86")
    assert kvm_probe(tmp_path, timeout=20, accel="tcg")


def test_kvm_guest_lifecycle(node: Node, tiny: Tiny) -> None:
    spec = kernel_spec(tiny, 11, tiny.cmdline)
    deployed = node.ok("deploy", kind="kvm", spec=spec)
    assert deployed["state"] == "running"
    assert deployed["accel"] in ("kvm", "tcg")
    assert deployed["privileged"] is False
    assert node.ok("deploy", kind="kvm", spec=spec)["pid"] == deployed["pid"]  # idempotent

    status = node.poll("kvm", "one-11")
    assert (status["state"], status["vm_id"], status["kind"]) == ("running", 11, "kvm")
    assert status["figures"]["memory_mb"] > 0
    assert tiny.marker in node.console("one-11")
    assert [g["deploy_id"] for g in node.ok("poll_all")["guests"]] == ["one-11"]

    node.ok("reboot", kind="kvm", deploy_id="one-11", hard=False)
    wait_until(lambda: node.console("one-11").count(tiny.marker) >= 2, BOOT, "the reboot")

    node.ok("save", kind="kvm", deploy_id="one-11")
    assert node.poll("kvm", "one-11")["state"] == "saved"
    assert not node.qemu_pids()
    assert node.ok("restore", kind="kvm", deploy_id="one-11") == {"state": "running"}
    assert node.poll("kvm", "one-11")["state"] == "running"
    assert not (node.root / "guests" / "one-11" / "memory.state").exists()

    node.ok("shutdown", kind="kvm", deploy_id="one-11", hard=False, timeout=30)
    assert node.poll("kvm", "one-11")["state"] == "stopped"
    assert not node.qemu_pids()
    node.ok("cleanup", kind="kvm", deploy_id="one-11")
    assert node.poll("kvm", "one-11")["state"] == "missing"
    assert not (node.root / "guests" / "one-11").exists()


def test_microvm_guest_lifecycle(node: Node, tiny: Tiny) -> None:
    spec = kernel_spec(tiny, 12, tiny.microvm_cmdline)
    assert node.ok("deploy", kind="microvm", spec=spec)["state"] == "running"
    status = node.poll("microvm", "one-12")
    assert (status["state"], status["kind"]) == ("running", "microvm")
    assert tiny.marker in node.console("one-12")
    node.ok("shutdown", kind="microvm", deploy_id="one-12", hard=True)
    assert node.poll("microvm", "one-12")["state"] == "stopped"
    node.ok("cleanup", kind="microvm", deploy_id="one-12")
    assert node.poll("microvm", "one-12")["state"] == "missing"
    assert not node.qemu_pids()


def test_killed_qemu_polls_stopped(node: Node, tiny: Tiny) -> None:
    # No ready marker: deploy returns once QMP says "running", long before the boot ends.
    spec = kernel_spec(tiny, 13, tiny.cmdline, ready_marker=None)
    pid = node.ok("deploy", kind="kvm", spec=spec)["pid"]
    assert node.qemu_pids() == [pid]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: node.poll("kvm", "one-13")["state"] == "stopped", 10, "stopped")
    node.ok("cleanup", kind="kvm", deploy_id="one-13")
    assert node.poll("kvm", "one-13")["state"] == "missing"


def test_failed_boot_leaves_no_process(node: Node, tiny: Tiny) -> None:
    spec = kernel_spec(tiny, 14, tiny.cmdline, ready_marker="NEVER-PRINTED", boot_timeout=2)
    answer = node.call("deploy", kind="kvm", spec=spec)
    assert (answer["ok"], answer["kind"]) == (False, "failed")
    assert "NEVER-PRINTED" in answer["error"]
    assert not node.qemu_pids()
    assert node.poll("kvm", "one-14")["state"] == "stopped"
    bad = kernel_spec(tiny, 15, tiny.cmdline, kernel="/nonexistent/vmlinuz")
    answer = node.call("deploy", kind="kvm", spec=bad)
    assert (answer["ok"], answer["kind"]) == (False, "failed")
    assert "vmlinuz" in answer["error"]
    assert not node.qemu_pids()


def test_lxc_unprivileged_lifecycle(node: Node, tiny: Tiny, root_subids: None) -> None:
    spec = {
        "deploy_id": "one-21",
        "vm_id": 21,
        "name": "ct",
        "vcpu": 1,
        "memory_mb": 128,
        "rootfs": str(tiny.rootfs),
        "ready_marker": tiny.marker,
        "boot_timeout": 60,
    }
    deployed = node.ok("deploy", kind="lxc", spec=spec)
    assert (deployed["state"], deployed["privileged"], deployed["accel"]) == (
        "running",
        False,
        "none",
    )
    rootfs = node.root / "lxc" / "one-21" / "rootfs"
    assert rootfs.stat().st_uid == 100000 or rootfs.stat().st_uid >= 65536
    status = node.poll("lxc", "one-21")
    assert (status["state"], status["privileged"], status["kind"]) == ("running", False, "lxc")
    assert tiny.marker in node.console("one-21")

    node.ok("reboot", kind="lxc", deploy_id="one-21", hard=False)
    wait_until(lambda: node.console("one-21").count(tiny.marker) >= 2, 30, "the reboot")
    assert node.poll("lxc", "one-21")["state"] == "running"
    node.ok("reboot", kind="lxc", deploy_id="one-21", hard=True)
    assert node.poll("lxc", "one-21")["state"] == "running"
    answer = node.call("save", kind="lxc", deploy_id="one-21")
    assert (answer["ok"], answer["kind"]) == (False, "failed")

    node.ok("shutdown", kind="lxc", deploy_id="one-21", hard=False, timeout=20)
    assert node.poll("lxc", "one-21")["state"] == "stopped"
    node.ok("cleanup", kind="lxc", deploy_id="one-21")
    assert node.poll("lxc", "one-21")["state"] == "missing"
    assert not (node.root / "lxc" / "one-21").exists()
    listed = subprocess.run(
        ["lxc-ls", "-P", str(node.root / "lxc")], capture_output=True, text=True, timeout=30
    )
    assert listed.stdout.strip() == ""
