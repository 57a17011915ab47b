"""A node on this machine for the disk tests: the zipapp on a fresh ROOT, told to use TCG."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecloud.node.build import build_zipapp
from edgecloud.node.probe import qemu_version
from tests.host.test_node_guests import Node


@contextlib.contextmanager
def tcg_node(tmp_path: Path, prefix: str) -> Iterator[Node]:
    """Yield a Node on a fresh ROOT that knows KVM is not to be used (no probe); kill its
    QEMUs by PID and remove ROOT afterwards."""
    if not (shutil.which("qemu-system-x86_64") and shutil.which("qemu-img")):
        pytest.skip("needs qemu-system-x86 and qemu-utils")
    pyz = tmp_path / "node.pyz"
    build_zipapp(pyz)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (root / "cache").mkdir()
    verdict = {"key": f"{os.uname().release}|{qemu_version()}", "kvm": False}
    (root / "cache" / "kvm-probe.json").write_text(json.dumps(verdict))
    node = Node(pyz, root)
    try:
        yield node
    finally:
        for pid in node.qemu_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
